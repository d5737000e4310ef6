// Socket.IO 4 rooms server for `parlor bench --target socketio`.
//
// Usage: node server.js [PORT] [REDIS_URL] (default 7900; env PORT, REDIS_URL too). Listens on
// 127.0.0.1 only. With a Redis URL the server uses @socket.io/redis-adapter (pub/sub over that
// Redis, node-redis clients), so that several processes share their rooms: a broadcast reaches
// the room's members on every process (`parlor bench w5 --target socketio`). Without one, the
// default in-memory adapter: what a one-process Socket.IO deployment runs.
// Events (Socket.IO protocol v5 over Engine.IO v4, WebSocket transport only):
//   join(room, ack)      -> socket.join(room); ack()
//   bcast(room, message) -> every other member of the room gets msg(message)
// Heartbeat: Engine.IO's own ping (server "2", client "3") at the default 25 s interval.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || process.env.PORT || 7900);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
  // Parlor's default largest frame is 64 KiB; Socket.IO's default (1 MB) is fine for this load.
});

const redisUrl = process.argv[3] || process.env.REDIS_URL || "";

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(String(room));
    if (typeof ack === "function") ack();
  });
  socket.on("bcast", (room, message) => {
    socket.to(String(room)).emit("msg", message);
  });
});

async function main() {
  if (redisUrl) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: redisUrl });
    const subClient = pubClient.duplicate();
    for (const c of [pubClient, subClient]) {
      c.on("error", (e) => console.error(`redis: ${e.message}`));
    }
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }
  // Listen only once the adapter is in place: the generator's first connection must already
  // be on the shared rooms.
  httpServer.listen(port, "127.0.0.1", () => {
    console.log(`socket.io peer listening on ws://127.0.0.1:${port}/socket.io/${redisUrl ? " (redis adapter)" : ""}`);
  });
}

main().catch((e) => {
  console.error(`socket.io peer: ${e.stack || e}`);
  process.exit(1);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
