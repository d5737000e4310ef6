// Socket.IO 4 rooms server for `parlor bench --target socketio`.
//
// Usage: node server.js [PORT] (default 7900; env PORT too). Listens on 127.0.0.1 only.
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

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(String(room));
    if (typeof ack === "function") ack();
  });
  socket.on("bcast", (room, message) => {
    socket.to(String(room)).emit("msg", message);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`socket.io peer listening on ws://127.0.0.1:${port}/socket.io/`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
