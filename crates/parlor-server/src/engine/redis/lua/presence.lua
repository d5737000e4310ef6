-- Parlor's Redis engine: presence in audience-scale rooms (protocol §9.10). Appended after
-- lib.lua (whose `enter`, `leave` and `room_state_parts` call it through the table `presence`
-- declared there), before sessions.lua.
--
-- A room is large while it has more than the app's `full_presence_up_to` members. Its arrivals
-- and departures are not announced one by one: they go into the room's pending batch, two
-- hashes of user id -> user JSON, `padd` (arrived) and `pdel` (left), kept as net changes (a
-- user who came and went is in neither). The app's sorted set `pdue` holds each room with a
-- pending batch by the time it is due: at least one presence interval after the room's last
-- batch (`pflush` in its meta). Every node's reaper flushes the rooms that are due (`flush_due`,
-- in `reap`), so each batch is made once for the whole deployment, as ONE `user_update` event
-- of the users channel (logged, published, replayed like any other).

-- How many members other than the caller a large room's `ok` or `snapshot` lists, and how many
-- net changes a `user_update` carries before it says `list_changed` instead.
local PAGE = 100
-- How many rooms one reaper run flushes (the rest are due at the next tick).
local FLUSH_PER_RUN = 100

-- The app's threshold: its own setting, else the server's (0: no room is ever large).
local function presence_up_to()
  local own = CFG.fpu_apps and CFG.fpu_apps[tostring(APP)]
  if own then return own end
  return CFG.fpu or 0
end

-- Whether a room of `n` members is large.
function presence.large(n)
  local up_to = presence_up_to()
  return up_to > 0 and n > up_to
end

-- Send the room's pending batch now, if it has one: ONE `user_update` with the net changes (or
-- `list_changed` when they are more than a page), `count` the members now. Nobody's own event
-- (author 0): the session whose arrival it carries is sent it too. Returns its seq, or nil.
function presence.flush(room)
  local padd, pdel = rk(room, 'padd'), rk(room, 'pdel')
  redis.call('ZREM', P .. ':pdue', room)
  local n = redis.call('HLEN', padd) + redis.call('HLEN', pdel)
  if n == 0 then return nil end
  redis.call('HSET', rk(room, 'meta'), 'pflush', NOW)
  local body
  if n > PAGE then
    body = '"kind":"user_update","added":[],"deleted":[],"count":' .. redis.call('HLEN', rk(room, 'mem'))
      .. ',"list_changed":true'
  else
    body = '"kind":"user_update","added":[' .. table.concat(sorted_values(padd), ',') .. '],"deleted":['
      .. table.concat(sorted_values(pdel), ',') .. '],"count":' .. redis.call('HLEN', rk(room, 'mem'))
  end
  redis.call('DEL', padd, pdel)
  return emit(room, 'users', body, nil, false)
end

-- Plan the room's batch: due one interval after its last one, and not before now.
local function plan(room)
  local last = tonumber(redis.call('HGET', rk(room, 'meta'), 'pflush') or '0')
  local due = math.max(NOW, last + (CFG.presence_ms or 1000))
  redis.call('ZADD', P .. ':pdue', 'NX', due, room)
end

-- After a change to the batch: a batch that is empty again (net nothing) is not due.
local function settle(room)
  if redis.call('EXISTS', rk(room, 'padd')) == 0 and redis.call('EXISTS', rk(room, 'pdel')) == 0 then
    redis.call('ZREM', P .. ':pdue', room)
  else
    plan(room)
  end
end

-- User `uid` (`user`: its JSON) arrived in the large room: a return after a departure still in
-- the batch cancels it.
function presence.arrived(room, uid, user)
  if redis.call('HDEL', rk(room, 'pdel'), uid) == 0 then redis.call('HSET', rk(room, 'padd'), uid, user) end
  settle(room)
end

-- User `uid` left the large room: an arrival still in the batch is cancelled instead.
function presence.left(room, uid, user)
  if redis.call('HDEL', rk(room, 'padd'), uid) == 0 then redis.call('HSET', rk(room, 'pdel'), uid, user) end
  settle(room)
end

-- A member publishes in a large room (hosts stay exact): if its arrival is still pending, it is
-- taken out of the batch and returned (its user JSON), to be announced at once as a `user_add`.
function presence.take_arrival(room, uid)
  local user = redis.call('HGET', rk(room, 'padd'), uid)
  if not user then return nil end
  redis.call('HDEL', rk(room, 'padd'), uid)
  settle(room)
  return user
end

-- The batches that are due, flushed (at most FLUSH_PER_RUN per run). A room that is gone has
-- nothing to flush.
function presence.flush_due()
  for _, room in ipairs(redis.call('ZRANGEBYSCORE', P .. ':pdue', '-inf', NOW, 'LIMIT', 0, FLUSH_PER_RUN)) do
    if redis.call('EXISTS', rk(room, 'meta')) == 1 then
      presence.flush(room)
    else
      redis.call('ZREM', P .. ':pdue', room)
      redis.call('DEL', rk(room, 'padd'), rk(room, 'pdel'))
    end
  end
end

-- The first page's cache, `pg` (fields 'ids' and 'users': the first PAGE + 2 members by user
-- id and their user JSON, each joined by "\n", which neither contains): a login to a large room
-- reads it instead of 2 × PAGE lookups (W8: 100 000 logins into one room). Any change among
-- those first members drops it: called after an arrival is in `lex`, before a departure leaves.
function presence.changed(room, uid)
  if redis.call('EXISTS', rk(room, 'pg')) == 1
    and redis.call('ZLEXCOUNT', rk(room, 'lex'), '-', '[' .. uid) <= PAGE + 2 then
    redis.call('DEL', rk(room, 'pg'))
  end
end

local function split(text)
  local out = {}
  if text == '' then return out end
  for part in string.gmatch(text, '[^\n]+') do table.insert(out, part) end
  return out
end

-- The first PAGE + 2 members by user id: their ids and user JSON (from the cache, else read
-- and cached).
local function head(room)
  local c = redis.call('HMGET', rk(room, 'pg'), 'ids', 'users')
  if c[1] and c[2] then return split(c[1]), split(c[2]) end
  if redis.call('EXISTS', rk(room, 'lex')) == 0 then
    -- A room entered before `lex` existed (an older Parlor): made once from `uid`, as `members` does.
    for _, uid in ipairs(redis.call('HKEYS', rk(room, 'uid'))) do redis.call('ZADD', rk(room, 'lex'), 0, uid) end
  end
  local ids, users = {}, {}
  for _, uid in ipairs(redis.call('ZRANGE', rk(room, 'lex'), '-', '+', 'BYLEX', 'LIMIT', 0, PAGE + 2)) do
    local k = redis.call('HGET', rk(room, 'uid'), uid)
    local user = k and redis.call('HGET', rk(room, 'user'), k)
    if user then
      table.insert(ids, uid)
      table.insert(users, user)
    end
  end
  redis.call('HSET', rk(room, 'pg'), 'ids', table.concat(ids, '\n'), 'users', table.concat(users, '\n'))
  return ids, users
end

-- The `users` of a large room's `ok` or `snapshot` for `key`: the first PAGE members other than
-- the caller in the order of `members` (user ids as bytes), as JSON fields text with
-- `users_next`, the cursor of the rest ('' when there is none). O(page), not O(room); one read
-- of the cache for most logins.
function presence.first_page(key, room)
  local own = redis.call('HGET', sk(key), 'uid')
  local ids, all = head(room)
  local users, last, others = {}, '', 0
  for i, uid in ipairs(ids) do
    if uid ~= own then
      others = others + 1
      if others <= PAGE then
        table.insert(users, all[i])
        last = uid
      end
    end
  end
  local rest = ''
  if others > PAGE then rest = last end
  return '"users":[' .. table.concat(users, ',') .. '],"users_next":' .. json_str(rest)
end
