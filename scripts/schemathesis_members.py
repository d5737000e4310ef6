"""Members for scripts/schemathesis.sh: keep users in rooms while schemathesis runs, so that
the admin API's room operations find rooms, users and streams rather than only 404s.

  python schemathesis_members.py WS_URL APP READY_FILE user:room:token[:stream] ...

Each member says hello, logs in, publishes its stream if it has one, and comes back after
whatever the admin API does to it: logs in again after a kick, publishes again after its
stream was deleted, starts over after its connection was closed (a reconnect, a close 4009).
READY_FILE is written once every member is in its room. Runs until killed.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def member(url, app, user, room, token, stream, ready):
    first = True
    while True:
        try:
            async with connect(url) as ws:
                await ws.send(json.dumps({"t": "hello", "v": 1, "app_id": app,
                                          "user": {"id": user, "name": user.title()}, "token": token}))
                next_id = 0

                async def request(frame):
                    nonlocal next_id
                    next_id += 1
                    frame["id"] = next_id
                    await ws.send(json.dumps(frame))

                async def enter():
                    await request({"t": "login", "room": room,
                                   "config": {"max_members": 0, "user_status_notify": True}})
                    if stream:
                        await request({"t": "publish", "room": room, "stream": stream, "extra": "720p"})

                await enter()
                async for text in ws:
                    f = json.loads(text)
                    if f.get("t") == "ok" and first and f.get("id") == (2 if stream else 1):
                        first = False
                        ready.set()
                    elif f.get("t") == "kicked":
                        await enter()
                    elif f.get("kind") == "stream_delete" and stream and \
                            any(s.get("id") == stream for s in f.get("streams", [])):
                        await request({"t": "publish", "room": room, "stream": stream, "extra": "720p"})
        except Exception:  # the connection was closed by the server: start over
            pass
        await asyncio.sleep(0.05)


async def main():
    url, app, ready_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tasks, events = [], []
    for spec in sys.argv[4:]:
        user, room, token, *rest = spec.split(":")
        ready = asyncio.Event()
        events.append(ready)
        tasks.append(asyncio.create_task(member(url, app, user, room, token, rest[0] if rest else None, ready)))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 20)
    open(ready_file, "w").write("ready\n")
    await asyncio.gather(*tasks)


asyncio.run(main())
