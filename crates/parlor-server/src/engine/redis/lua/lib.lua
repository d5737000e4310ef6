-- Parlor's Redis engine: the steps every operation is made of (the memory engine's state.rs,
-- in Lua). Each script run is one atomic operation: it checks the rule, changes the state, takes
-- the next seq, appends the encoded event to the channel's log (a Redis Stream whose entry ids
-- are the seqs) and publishes it. Seqs are never assigned outside these scripts.
--
-- Every key of an app shares the hash tag {app}, so a Redis Cluster keeps an app in one slot
-- and a script touching a session and its rooms never crosses slots.
--
-- ARGV[1] key prefix 'parlor:{APP}'   ARGV[2] now (wall ms)   ARGV[3] settings (JSON)
-- ARGV[4] this node's id   ARGV[5] a fresh random id (for new epochs and resume tokens)
-- ARGV[6] the operation    ARGV[7..] its arguments
--
-- A script returns { status, payload, item... }: each item is a JSON array the calling node
-- applies in order: {"ev", room, ch, seq, author, epoch, frame} (an event it produced; every
-- other node gets it by pub/sub), {"left", room, key, rseq, useq, epoch, ord} (the membership
-- `ord` ended after these seqs; also on pub/sub), {"ctl", msg} (for a session of the calling node), and
-- {"join", room, key, notify, rseq, useq, epoch, ord}.

-- Loaded once as a Redis function library (`FUNCTION LOAD`, engine/redis/mod.rs): the
-- functions below are made once, not at every call as an `EVALSHA` of this chunk would (36 µs a
-- call measured, against ~3 µs). What a call works on lives in these upvalues, set by `begin`
-- at the start of every call: nothing of one call may be left to the next.
local KEYS, ARGV
local P, NOW, CFG, NODE, FRESH, APP, fresh_n, items
-- The kicks this call made (`kick`): a request remembers them with its answer (ops.lua).
local KICKS
local HOOKS, HOOK_LOG
-- The settings are the same text at every call of a node: decoded once per text.
local CFG_TEXT
-- Presence in large rooms (§9.10): filled by presence.lua, which comes after this file.
local presence = {}

local function begin(keys, args)
  KEYS, ARGV = keys, args
  P = ARGV[1]
  NOW = tonumber(ARGV[2])
  if ARGV[3] ~= CFG_TEXT then
    CFG = cjson.decode(ARGV[3])
    CFG_TEXT = ARGV[3]
  end
  NODE = ARGV[4]
  FRESH = ARGV[5]
  APP = tonumber(string.match(P, '{(%d+)}'))
  fresh_n = 0
  items = {}
  KICKS = {}
  HOOKS = false
  for _, a in ipairs(CFG.hooks or {}) do
    if a == APP then HOOKS = true end
  end
  HOOK_LOG = P .. ':hooks'
end

local function fresh_id()
  fresh_n = fresh_n + 1
  return FRESH .. string.format('%02x', fresh_n)
end

local function sk(key, what)
  if what then return P .. ':s:' .. key .. ':' .. what end
  return P .. ':s:' .. key
end

local function rk(room, what) return P .. ':r:' .. room .. ':' .. what end

local function json_str(s) return cjson.encode(s) end

-- Whether secrets `a` and `b` are equal, in time that depends only on their lengths (like
-- src/secret.rs): no early exit at the first differing byte.
local function same_secret(a, b)
  if #a ~= #b then return false end
  local d = 0
  for i = 1, #a do d = bit.bor(d, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return d == 0
end

-- A message for session `key` ({app, key, conn, kind, a, b, c}): to its node's control
-- channel, or, when that is the calling node, to the items the caller applies.
local function to_session(key, kind, a, b, c)
  local s = redis.call('HMGET', sk(key), 'node', 'conn')
  local node = s[1]
  if not node or node == '' then return end
  local msg = {APP, tonumber(key), tonumber(s[2] or '0'), kind, a, b, c}
  if node == NODE then
    table.insert(items, cjson.encode({'ctl', msg}))
  else
    redis.call('PUBLISH', 'parlor:node:' .. node, cjson.encode(msg))
  end
end

-- Drop what is both beyond the newest log_len entries and older than log_age.
local function trim(log, meta)
  local n = redis.call('XLEN', log)
  while n > CFG.log_len do
    local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    local f = first[2]
    local t, m = 0, '0'
    for i = 1, #f, 2 do
      if f[i] == 't' then t = tonumber(f[i + 1]) elseif f[i] == 'm' then m = f[i + 1] end
    end
    if t >= NOW - CFG.log_age_ms then break end
    if m == '1' and meta then
      redis.call('HSET', meta, 'dmsg', string.match(first[1], '^(%d+)'))
    end
    redis.call('XDEL', log, first[1])
    n = n - 1
  end
end

-- Append an event to a room channel and publish it. `body` is the event's fields after `seq`,
-- as JSON text without braces. Returns its seq.
local function emit(room, ch, body, author, is_message)
  local meta = rk(room, 'meta')
  local seq = redis.call('HINCRBY', meta, ch == 'users' and 'useq' or 'rseq', 1)
  local epoch = redis.call('HGET', meta, 'epoch')
  local frame = '{"t":"event","room":' .. json_str(room) .. ',"ch":"' .. ch .. '","seq":' .. seq .. ',' .. body .. '}'
  local log = rk(room, 'log:' .. ch)
  local a = author or 0
  redis.call('XADD', log, seq .. '-1', 'f', frame, 't', NOW, 'm', is_message and '1' or '0', 'a', a)
  if is_message then redis.call('HINCRBY', meta, 'msgs', 1) end
  trim(log, meta)
  local c = ch == 'users' and 'u' or 'r'
  redis.call('PUBLISH', P .. ':ev:' .. room, c .. '|' .. seq .. '|' .. a .. '|' .. epoch .. '|' .. frame)
  table.insert(items, cjson.encode({'ev', room, c, seq, tonumber(a), epoch, frame}))
  return seq
end

-- Webhooks (src/webhook/): when the app has webhook URLs (CFG.hooks lists those apps), every
-- event is appended to the app's hook log, a Redis Stream, in the same atomic step as the
-- change, so the log is in the order of the changes; one node (the lease holder) sends it and
-- deletes what it sent (engine/redis/hooks.rs). Beyond CFG.hook_queue waiting events a new one
-- is dropped and the calling node counts a dead letter ({"hookdrop"}). The bodies are those of
-- src/webhook/event.rs.
-- (HOOKS and HOOK_LOG are set by `begin`.)

local STREAM_REASON_NAME = { 'stopped', 'timeout', 'duplicate_login', 'kicked', 'logout' }

-- A webhook event of `room`: its name and its own fields as JSON text without braces ('' for
-- none). `epoch` when the room's meta is already gone or not yet read.
local function hook(room, event, fields, epoch)
  if not HOOKS then return end
  if redis.call('XLEN', HOOK_LOG) >= CFG.hook_queue then
    table.insert(items, '["hookdrop"]')
    return
  end
  epoch = epoch or redis.call('HGET', rk(room, 'meta'), 'epoch') or ''
  local body = '{"id":' .. json_str(fresh_id()) .. ',"event":"' .. event .. '","app_id":' .. APP .. ',"time_ms":' .. NOW
    .. ',"room":' .. json_str(room) .. ',"room_session":' .. json_str(epoch)
  if fields ~= '' then body = body .. ',' .. fields end
  redis.call('XADD', HOOK_LOG, '*', 'b', body .. '}')
end

local function hook_stream_deleted(room, stream, reason)
  if not HOOKS then return end
  hook(room, 'stream_deleted', '"stream":' .. stream .. ',"reason":' .. reason .. ',"reason_name":"'
    .. (STREAM_REASON_NAME[reason] or 'unknown') .. '"')
end

local function hook_user(room, event, key, user, reason)
  if not HOOKS then return end
  local fields = '"user":' .. user .. ',"session":' .. json_str(redis.call('HGET', sk(key), 'pub') or '')
  if reason then fields = fields .. ',"reason":"' .. reason[1] .. '"' end
  if reason and reason[2] then fields = fields .. ',"code":' .. reason[2] end
  hook(room, event, fields)
end

-- A hash's fields, sorted, and its values by field.
local function sorted_hash(hash)
  local flat = redis.call('HGETALL', hash)
  local keys, vals = {}, {}
  for i = 1, #flat, 2 do
    table.insert(keys, flat[i])
    vals[flat[i]] = flat[i + 1]
  end
  table.sort(keys)
  return keys, vals
end

-- A hash's values, in the order of their fields.
local function sorted_values(hash)
  local keys, vals = sorted_hash(hash)
  local out = {}
  for _, k in ipairs(keys) do table.insert(out, vals[k]) end
  return out
end

-- A room's streams and extra info as JSON fields text: "streams":[…],"extra":[…].
local function streams_and_extra(room)
  return '"streams":[' .. table.concat(sorted_values(rk(room, 'st')), ',') .. '],"extra":['
    .. table.concat(sorted_values(rk(room, 'ex')), ',') .. ']'
end

-- The room state of a login `ok` or a `snapshot` for `key`, as two JSON texts without braces:
-- its fields (users?, streams, extra, online, room_session) and its seqs (room, users?).
local function room_state_parts(key, room)
  local meta = rk(room, 'meta')
  local m = redis.call('HMGET', meta, 'epoch', 'rseq', 'useq')
  local notify = redis.call('HGET', rk(room, 'mem'), key) == '1'
  local parts = {}
  if notify and presence.large(redis.call('HLEN', rk(room, 'mem'))) then
    table.insert(parts, presence.first_page(key, room))
  elseif notify then
    local users = {}
    for _, k in ipairs(redis.call('ZRANGE', rk(room, 'ord'), 0, -1)) do
      if k ~= tostring(key) then table.insert(users, redis.call('HGET', rk(room, 'user'), k)) end
    end
    table.insert(parts, '"users":[' .. table.concat(users, ',') .. ']')
  end
  table.insert(parts, streams_and_extra(room))
  table.insert(parts, '"online":' .. redis.call('HLEN', rk(room, 'mem')))
  table.insert(parts, '"room_session":' .. json_str(m[1]))
  local seq = '"room":' .. m[2]
  if notify then seq = seq .. ',"users":' .. m[3] end
  return table.concat(parts, ','), seq
end

-- The same as {"state":{...},"seq":{...}}.
local function room_state(key, room)
  local fields, seq = room_state_parts(key, room)
  return '{"state":{' .. fields .. '},"seq":{' .. seq .. '}}'
end

-- lex: the members' user ids, all at score 0, so in byte order: the pages of `members`.
-- padd, pdel: a large room's pending batch (presence.lua).
local ROOM_KEYS = {'meta', 'mem', 'user', 'uid', 'lex', 'ord', 'st', 'own', 'ex', 'log:room', 'log:users', 'padd', 'pdel', 'pg'}

-- Why a member leaves: `kick` is the admin API's, `close` its room close, `expire` the token's.
local REASON = { logout = 5, offline = 2, dup = 3, kick = 4, close = 4, expire = 4 }
-- The webhook's `user_logout` reason and kick code.
local HOOK_REASON = {
  logout = {'logout'}, offline = {'timeout'}, dup = {'duplicate_login', 1002050}, kick = {'admin_kick', 1002055},
  close = {'room_closed', 1002055}, expire = {'token_expired', 1002056},
}

-- Take `key` out of `room`, deleting its streams and telling the others as `why` says. Returns
-- the seqs produced as JSON fields text.
local function leave(key, room, why)
  key = tostring(key)
  local mraw = redis.call('HGET', sk(key, 'rooms'), room)
  redis.call('HDEL', sk(key, 'rooms'), room)
  if why == 'offline' and mraw then redis.call('HSET', sk(key, 'away'), room, mraw) end
  redis.call('ZREM', P .. ':tokens', key .. '|' .. room)
  redis.call('ZREM', P .. ':warn', key .. '|' .. room)
  if redis.call('HEXISTS', rk(room, 'mem'), key) == 0 then return '' end
  local own = redis.call('HGETALL', rk(room, 'own'))
  local ids = {}
  for i = 1, #own, 2 do
    if own[i + 1] == key then table.insert(ids, own[i]) end
  end
  table.sort(ids)
  -- §9.10: when this departure will be told on its own (a host's, or one after which the room
  -- is not large), the pending batch goes first, while the member is still there to be sent it.
  if #ids > 0 or not presence.large(redis.call('HLEN', rk(room, 'mem')) - 1) then presence.flush(room) end
  redis.call('HDEL', rk(room, 'mem'), key)
  local user = redis.call('HGET', rk(room, 'user'), key)
  redis.call('HDEL', rk(room, 'user'), key)
  local ord = redis.call('ZSCORE', rk(room, 'ord'), key)
  redis.call('ZREM', rk(room, 'ord'), key)
  local uid = redis.call('HGET', sk(key), 'uid')
  if uid and redis.call('HGET', rk(room, 'uid'), uid) == key then
    redis.call('HDEL', rk(room, 'uid'), uid)
    presence.changed(room, uid)
    redis.call('ZREM', rk(room, 'lex'), uid)
  end
  local streams = {}
  for _, id in ipairs(ids) do
    table.insert(streams, redis.call('HGET', rk(room, 'st'), id))
    redis.call('HDEL', rk(room, 'st'), id)
    redis.call('HDEL', rk(room, 'own'), id)
    redis.call('HDEL', P .. ':streams', id)
  end
  local seqs = {}
  for _, stream in ipairs(streams) do hook_stream_deleted(room, stream, REASON[why]) end
  hook_user(room, 'user_logout', key, user, HOOK_REASON[why])
  if #streams > 0 then
    local body = '"kind":"stream_delete","streams":[' .. table.concat(streams, ',') .. '],"reason":' .. REASON[why]
    table.insert(seqs, '"room":' .. emit(room, 'room', body, key, false))
  end
  -- §9.10, the size judged after the departure: in a large room it goes into the batch, unless
  -- the member was a host (it had streams); else it is told at once (the batch went first).
  if why ~= 'dup' then
    if #streams == 0 and uid and presence.large(redis.call('HLEN', rk(room, 'mem'))) then
      presence.left(room, uid, user)
    else
      table.insert(seqs, '"users":' .. emit(room, 'users', '"kind":"user_delete","users":[' .. user .. ']', key, false))
    end
  end
  -- The departure goes on the room's channel, in order with its events: a node delivers
  -- nothing after it to the member that left.
  local at = redis.call('HMGET', rk(room, 'meta'), 'rseq', 'useq', 'epoch')
  redis.call('PUBLISH', P .. ':ev:' .. room, 'l|' .. key .. '|' .. at[1] .. '|' .. at[2] .. '|' .. at[3] .. '|' .. ord)
  table.insert(items, cjson.encode({'left', room, tonumber(key), tonumber(at[1]), tonumber(at[2]), at[3], tonumber(ord)}))
  if redis.call('HLEN', rk(room, 'mem')) == 0 then
    hook(room, 'room_closed', '', at[3])
    for _, w in ipairs(ROOM_KEYS) do redis.call('DEL', rk(room, w)) end
    redis.call('SREM', P .. ':rooms', room)
    redis.call('ZREM', P .. ':pdue', room)
  end
  return table.concat(seqs, ',')
end

-- The `kicked` frame of a kick out of `room` (`extended`: JSON text, or nil).
local function kicked_frame(room, code, extended)
  local frame = '{"t":"kicked","room":' .. json_str(room) .. ',"code":' .. code
  if extended then frame = frame .. ',"extended_data":' .. extended end
  return frame .. '}'
end

-- Kick `key` out of `room`: `kicked`, and close 4009 when no room is left. A pending kick is
-- 'kicked' (room -> code) with its extended data in 'kext' and the membership it ended in 'kord'
-- ('<epoch>|<ord>'), so that it can be told again. The node that tells the frame ends that
-- membership in its delivery first (`apply_ctl`): the room's channel may still bring it events
-- from before the departure, and none may follow the `kicked` (sim seed 34064).
local function kick(key, room, why, code, extended)
  local epoch = redis.call('HGET', rk(room, 'meta'), 'epoch')
  local ord = redis.call('ZSCORE', rk(room, 'ord'), key)
  local membership = epoch and ord and (epoch .. '|' .. ord) or nil
  leave(key, room, why)
  if redis.call('EXISTS', sk(key)) == 0 then return end
  redis.call('HSET', sk(key, 'kicked'), room, code)
  if extended then
    redis.call('HSET', sk(key, 'kext'), room, extended)
  else
    redis.call('HDEL', sk(key, 'kext'), room)
  end
  if membership then
    redis.call('HSET', sk(key, 'kord'), room, membership)
  else
    redis.call('HDEL', sk(key, 'kord'), room)
  end
  local frame = kicked_frame(room, code, extended)
  to_session(key, 'frame', frame, room, membership)
  table.insert(KICKS, {key, room, code, frame, membership})
  if redis.call('HLEN', sk(key, 'rooms')) == 0 then
    to_session(key, 'close', 4009, 'kicked out of every room', false)
  end
end

-- Tell the sessions a request kicked (`KICKS` of its first run, remembered with its answer) of
-- their kicks again, when the answer is recalled: the first run's message to a session of the
-- calling node went only in that run's answer, lost with it. Only a kick still pending is told
-- (the session neither back in the room nor told of it by a resume), and only the `kicked`
-- frame: a connection is never closed again, it may be a newer one.
local function kicks_again(raw)
  for _, k in ipairs(cjson.decode(raw)) do
    -- A resume that reports a kick moves it from 'kicked' to 'told' (sessions.lua): so a kick
    -- still in 'kicked' is neither undone by a new login nor told yet.
    if redis.call('HGET', sk(k[1], 'kicked'), k[2]) == tostring(k[3]) then
      to_session(k[1], 'frame', k[4], k[2], k[5])
    end
  end
end

-- Token bookkeeping of a membership: when it expires (kick) and when to warn.
local function track_token(key, room, m)
  local member = key .. '|' .. room
  redis.call('ZADD', P .. ':tokens', m.exp, member)
  if m.w == 0 then
    redis.call('ZADD', P .. ':warn', m.exp - CFG.warn_s, member)
  else
    redis.call('ZREM', P .. ':warn', member)
  end
end

-- Put `key` in `room` (membership `m`: {c=config, exp, pub, w}). Returns the room state JSON,
-- or nil and the refusal.
local function enter(key, room, m)
  key = tostring(key)
  local user = redis.call('HGET', sk(key), 'user')
  local uid = redis.call('HGET', sk(key), 'uid')
  local meta = rk(room, 'meta')
  local older = redis.call('HGET', rk(room, 'uid'), uid)
  if older == key then older = nil end
  if redis.call('EXISTS', meta) == 1 then
    local max = tonumber(redis.call('HGET', meta, 'max') or '0')
    local others = redis.call('HLEN', rk(room, 'mem'))
    if older then others = others - 1 end
    if max > 0 and others >= max then return nil, 'RoomFull' end
  end
  if older then kick(older, room, 'dup', 1002050, nil) end
  if redis.call('EXISTS', meta) == 0 then
    redis.call('HSET', meta, 'epoch', fresh_id(), 'max', m.c.max_members or 0, 'rseq', 0, 'useq', 0,
      'joins', 0, 'msgs', 0, 'dmsg', 0)
    redis.call('SADD', P .. ':rooms', room)
    hook(room, 'room_created', '')
  end
  local notify = '1'
  if m.c.user_status_notify == false then notify = '0' end
  redis.call('HSET', rk(room, 'mem'), key, notify)
  redis.call('HSET', rk(room, 'user'), key, user)
  redis.call('HSET', rk(room, 'uid'), uid, key)
  redis.call('ZADD', rk(room, 'lex'), 0, uid)
  presence.changed(room, uid)
  -- The join's ordinal: the order of the member list, and which membership this is (a node
  -- that hears a departure late leaves a newer membership alone, engine::Joining).
  local ord = redis.call('HINCRBY', meta, 'joins', 1)
  redis.call('ZADD', rk(room, 'ord'), ord, key)
  -- §9.10, the size judged after the arrival: batched in a large room; else told at once, after
  -- any batch still pending.
  if older then
    -- The same user again (no user change): a pending arrival is told with the new name.
    if redis.call('HEXISTS', rk(room, 'padd'), uid) == 1 then redis.call('HSET', rk(room, 'padd'), uid, user) end
  else
    if presence.large(redis.call('HLEN', rk(room, 'mem'))) then
      presence.arrived(room, uid, user)
    else
      presence.flush(room)
      emit(room, 'users', '"kind":"user_add","users":[' .. user .. ']', key, false)
    end
  end
  hook_user(room, 'user_login', key, user, nil)
  redis.call('HDEL', sk(key, 'kicked'), room)
  redis.call('HSET', sk(key, 'rooms'), room, cjson.encode(m))
  track_token(key, room, m)
  local s = redis.call('HMGET', meta, 'rseq', 'useq', 'epoch')
  table.insert(items, cjson.encode({'join', room, tonumber(key), notify == '1', tonumber(s[1]), tonumber(s[2]), s[3], ord}))
  return room_state(key, room)
end

local SESSION_KEYS = {'rooms', 'away', 'kicked', 'kext', 'kord', 'told', 'direct', 'ans', 'ansq', 'akick'}

-- The session has been silent for the session timeout: out of every room, kept for retention.
local function go_offline(key)
  key = tostring(key)
  redis.call('ZREM', P .. ':deadline', key)
  if redis.call('EXISTS', sk(key)) == 0 then return end
  redis.call('HSET', sk(key), 'off', '1')
  local lf = tonumber(redis.call('HGET', sk(key), 'lf') or NOW)
  redis.call('ZADD', P .. ':retain', lf + CFG.retention_ms, key)
  to_session(key, 'close', 1001, 'session timed out', true)
  local rooms = redis.call('HKEYS', sk(key, 'rooms'))
  table.sort(rooms)
  for _, room in ipairs(rooms) do leave(key, room, 'offline') end
  -- No node serves it now: whoever resumes it binds it again.
  redis.call('HSET', sk(key), 'node', '')
  -- Kept for the retention, also if no reaper ever runs again (every node gone).
  local ttl = CFG.retention_ms + CFG.timeout_ms
  redis.call('PEXPIRE', sk(key), ttl)
  redis.call('PEXPIRE', P .. ':pub:' .. redis.call('HGET', sk(key), 'pub'), ttl)
  for _, w in ipairs(SESSION_KEYS) do redis.call('PEXPIRE', sk(key, w), ttl) end
end

local function forget_session(key)
  key = tostring(key)
  local pub = redis.call('HGET', sk(key), 'pub')
  if pub then redis.call('DEL', P .. ':pub:' .. pub) end
  redis.call('DEL', sk(key))
  for _, w in ipairs(SESSION_KEYS) do redis.call('DEL', sk(key, w)) end
  redis.call('ZREM', P .. ':deadline', key)
  redis.call('ZREM', P .. ':retain', key)
end

-- `bye`: out of every room, not resumable.
local function end_session(key)
  key = tostring(key)
  local rooms = redis.call('HKEYS', sk(key, 'rooms'))
  table.sort(rooms)
  for _, room in ipairs(rooms) do leave(key, room, 'logout') end
  to_session(key, 'close', 1000, 'bye', false)
  forget_session(key)
end
