-- Parlor's Redis engine: resume, liveness (the reaper every node runs, racing safely: each
-- expired entry is taken out of its sorted set by the script that handles it), and the admin
-- operations. Between lib.lua and ops.lua in the one script.

-- The events of `log` after `after`, or nil when some of them are no longer kept (or `after`
-- is ahead of the log, so it belongs to another life of the room).
local function since(log, after, last)
  after = tonumber(after or 0)
  if after > last then return nil end
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  local first_seq = last + 1
  if first then first_seq = tonumber(string.match(first[1], '^(%d+)')) end
  if after + 1 < first_seq then return nil end
  local out = {}
  for _, e in ipairs(redis.call('XRANGE', log, (after + 1) .. '-0', '+')) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'f' then table.insert(out, f[i + 1]) end
    end
  end
  return out
end

local function send(frame) table.insert(items, cjson.encode({'send', frame})) end

local function map_json(t)
  local keys = {}
  for k in pairs(t) do table.insert(keys, k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do table.insert(parts, json_str(k) .. ':' .. json_str(t[k])) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- resume PUBLIC TOKEN ACK CONN NEW_TOKEN (§6). The items: the old connection's close, the rooms
-- entered again, then {"at", room, rseq, useq, epoch} for every room the session is in, then
-- the frames to send on the new connection, in order. A resume rotates the token to NEW_TOKEN
-- and keeps the one it used as 'prt' until the client confirms the new one (CONFIRM in mod.rs): a
-- retry with 'prt' (the answer was lost, or the node's call timed out after the script ran)
-- gets the same outcome and the same token, 'rt', with the kicks the lost answer told
-- ('told') told again (§9.3, "A resume can be retried").
local function resume(pub, token, ack_raw, conn, new_rt)
  local key = redis.call('GET', P .. ':pub:' .. pub)
  if not key then return {'refused', 'unknown or expired session'} end
  local t = redis.call('HMGET', sk(key), 'rt', 'prt')
  local rt, prt = t[1], t[2]
  local again = rt and prt and same_secret(prt, token)
  if not again and (not rt or not same_secret(rt, token)) then return {'refused', 'wrong resume token'} end
  -- The connection it replaces is closed; not the same one again (the node ran this attempt
  -- again after its call timed out).
  local old = redis.call('HMGET', sk(key), 'node', 'conn')
  if old[1] and old[1] ~= '' and not (old[1] == NODE and old[2] == conn) then
    to_session(key, 'close', 1001, 'replaced by a resume', true)
  end
  if again then
    new_rt = rt
    local told = redis.call('HGETALL', sk(key, 'told'))
    for i = 1, #told, 2 do redis.call('HSETNX', sk(key, 'kicked'), told[i], told[i + 1]) end
  else
    prt = rt
  end
  redis.call('DEL', sk(key, 'told'))
  redis.call('HSET', sk(key), 'rt', new_rt, 'prt', prt, 'off', '0', 'lf', NOW, 'node', NODE, 'conn', conn)
  redis.call('ZREM', P .. ':retain', key)
  redis.call('ZADD', P .. ':deadline', NOW + CFG.timeout_ms, key)
  redis.call('PERSIST', sk(key))
  redis.call('PERSIST', P .. ':pub:' .. pub)
  for _, w in ipairs(SESSION_KEYS) do redis.call('PERSIST', sk(key, w)) end
  -- An offline session goes back into the rooms it was removed from.
  local away_rooms, away_m = sorted_hash(sk(key, 'away'))
  redis.call('DEL', sk(key, 'away'))
  for _, room in ipairs(away_rooms) do
    local state = enter(key, room, cjson.decode(away_m[room]))
    if not state then redis.call('HSET', sk(key, 'kicked'), room, 1002034) end
  end
  -- A room whose state was lost while the session was in it (a failover with lost writes) is
  -- entered again: a new epoch, so the client gets a snapshot, never a replay of another log.
  for _, room in ipairs(redis.call('HKEYS', sk(key, 'rooms'))) do
    if redis.call('HEXISTS', rk(room, 'mem'), key) == 0 then
      local m = cjson.decode(redis.call('HGET', sk(key, 'rooms'), room))
      redis.call('HDEL', sk(key, 'rooms'), room)
      if not enter(key, room, m) then redis.call('HSET', sk(key, 'kicked'), room, 1002034) end
    end
  end
  local ack = cjson.decode(ack_raw)
  local acked = ack.rooms or {}
  local rooms = redis.call('HKEYS', sk(key, 'rooms'))
  local in_room = {}
  for _, r in ipairs(rooms) do in_room[r] = true end
  for r in pairs(acked) do
    if not in_room[r] then table.insert(rooms, r) end
  end
  table.sort(rooms)
  local outcomes, frames, kicked_told = {}, {}, {}
  for _, room in ipairs(rooms) do
    if not in_room[room] then
      local code = redis.call('HGET', sk(key, 'kicked'), room)
      if code then
        outcomes[room] = 'kicked:' .. code
        table.insert(kicked_told, room)
      end
    else
      local meta = rk(room, 'meta')
      local m = redis.call('HMGET', meta, 'epoch', 'rseq', 'useq', 'msgs', 'dmsg')
      local epoch, rseq, useq = m[1], tonumber(m[2]), tonumber(m[3])
      local notify = redis.call('HGET', rk(room, 'mem'), key) == '1'
      local ord = tonumber(redis.call('ZSCORE', rk(room, 'ord'), key))
      table.insert(items, cjson.encode({'at', room, tonumber(key), notify, rseq, useq, epoch, ord}))
      local a = acked[room]
      local replay = nil
      if a and a.epoch == epoch then
        replay = since(rk(room, 'log:room'), a.room, rseq)
        if replay and notify then
          local u = since(rk(room, 'log:users'), a.users, useq)
          if u then
            for _, f in ipairs(u) do table.insert(replay, f) end
          else
            replay = nil
          end
        end
      end
      if replay then
        outcomes[room] = 'replay'
        for _, f in ipairs(replay) do table.insert(frames, f) end
      else
        outcomes[room] = 'snapshot'
        local missed
        if a and a.epoch == epoch then
          missed = tonumber(m[5]) > tonumber(a.room or 0)
        else
          missed = tonumber(m[4]) > 0
        end
        local fields, seq = room_state_parts(key, room)
        table.insert(frames, '{"t":"snapshot","room":' .. json_str(room) .. ',' .. fields .. ',"seq":{' .. seq
          .. '},"missed_messages":' .. tostring(missed) .. '}')
      end
    end
  end
  for _, room in ipairs(kicked_told) do
    redis.call('HSET', sk(key, 'told'), room, redis.call('HGET', sk(key, 'kicked'), room))
    redis.call('HDEL', sk(key, 'kicked'), room)
  end
  local dlast = tonumber(redis.call('HGET', sk(key), 'dseq') or '0')
  local direct = since(sk(key, 'direct'), ack.direct or 0, dlast) or since(sk(key, 'direct'), 0, dlast) or {}
  send('{"t":"resumed","session":' .. json_str(pub) .. ',"resume_token":' .. json_str(new_rt) .. ',"rooms":'
    .. map_json(outcomes) .. ',"server_time_ms":' .. NOW .. '}')
  for _, f in ipairs(frames) do send(f) end
  for _, f in ipairs(direct) do send(f) end
  send('{"t":"resume_done"}')
  local s = redis.call('HMGET', sk(key), 'user', 'claims', 'last')
  return {'resumed', '{"key":' .. key .. ',"user":' .. s[1] .. ',"claims":' .. s[2] .. ',"last_request":' .. s[3]
    .. ',"resume_token":' .. json_str(new_rt) .. '}'}
end

-- touch KEY LF [KEY LF ...]: this node's batch of liveness; a session already offline stays so.
local function touch(a)
  for i = 1, #a, 2 do
    local key, lf = a[i], tonumber(a[i + 1])
    if redis.call('ZSCORE', P .. ':deadline', key) then
      redis.call('ZADD', P .. ':deadline', lf + CFG.timeout_ms, key)
      redis.call('HSET', sk(key), 'lf', lf)
    end
  end
  return {'ok', ''}
end

-- reap: sessions past their deadline go offline; past retention are forgotten; tokens warn
-- and expire. Bounded per run; every node runs it, and each entry is handled once.
local function reap()
  local n = 0
  -- After a gap in reaping (Redis away, or a failover whose new master lost the latest deadline
  -- refreshes), the deadlines are stale: nobody goes offline until every node has sent its touch
  -- batch (the frames it saw meanwhile). The latest reap time is kept as a maximum, so that
  -- nodes' clocks a little apart never look like a gap.
  local prev = redis.call('GET', P .. ':reaped')
  local last = tonumber(prev or NOW)
  if not prev or NOW > last then redis.call('SET', P .. ':reaped', NOW) end
  if NOW - last > 2000 then
    redis.call('SET', P .. ':reap_grace', NOW + math.max(3000, math.min(CFG.timeout_ms, 10000)))
  end
  if NOW >= tonumber(redis.call('GET', P .. ':reap_grace') or 0) then
    for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. ':deadline', '-inf', NOW, 'LIMIT', 0, 200)) do
      go_offline(key)
      n = n + 1
    end
  end
  local expired = 0
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. ':retain', '-inf', NOW, 'LIMIT', 0, 200)) do
    forget_session(key)
    expired = expired + 1
  end
  -- The offline cap (`--max-offline-sessions`, per app here): beyond it the sessions that went
  -- quiet first (the lowest retention deadlines) are forgotten early; their resume gets 1002057.
  if CFG.max_offline > 0 then
    local over = redis.call('ZCARD', P .. ':retain') - CFG.max_offline
    if over > 0 then
      for _, key in ipairs(redis.call('ZRANGE', P .. ':retain', 0, math.min(over, 200) - 1)) do
        forget_session(key)
      end
    end
  end
  local now_s = math.floor(NOW / 1000)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', P .. ':tokens', '-inf', now_s, 'LIMIT', 0, 200)) do
    redis.call('ZREM', P .. ':tokens', member)
    local key, room = string.match(member, '^(%d+)|(.*)$')
    if key and redis.call('HEXISTS', sk(key, 'rooms'), room) == 1 then kick(key, room, 'expire', 1002056, nil) end
  end
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', P .. ':warn', '-inf', now_s, 'LIMIT', 0, 200)) do
    redis.call('ZREM', P .. ':warn', member)
    local key, room = string.match(member, '^(%d+)|(.*)$')
    local raw = key and redis.call('HGET', sk(key, 'rooms'), room)
    if raw then
      local m = cjson.decode(raw)
      if m.w == 0 and m.exp > now_s then
        m.w = 1
        redis.call('HSET', sk(key, 'rooms'), room, cjson.encode(m))
        to_session(key, 'frame', '{"t":"token_will_expire","room":' .. json_str(room) .. ',"remaining_s":' .. (m.exp - now_s) .. '}')
      end
    end
  end
  -- Large rooms' batches that are due (§9.10): made here, once for the deployment.
  presence.flush_due()
  -- How many went offline and how many were forgotten (for the node's metrics).
  return {'ok', n .. ' ' .. expired}
end

local function admin_kick(room, uid, reason)
  local key = redis.call('HGET', rk(room, 'uid'), uid)
  if not key then return {'no', ''} end
  kick(key, room, 'kick', 1002055, '{"reason":' .. json_str(reason) .. '}')
  return {'ok', ''}
end

local function admin_close(room, reason)
  if redis.call('EXISTS', rk(room, 'meta')) == 0 then return {'no', ''} end
  for _, key in ipairs(redis.call('ZRANGE', rk(room, 'ord'), 0, -1)) do
    kick(key, room, 'close', 1002055, '{"reason":' .. json_str(reason) .. '}')
  end
  return {'ok', ''}
end

-- A room as the admin API shows it, as JSON text.
local function room_info(room)
  local epoch = redis.call('HGET', rk(room, 'meta'), 'epoch')
  if not epoch then return nil end
  local users = {}
  for _, k in ipairs(redis.call('ZRANGE', rk(room, 'ord'), 0, -1)) do
    table.insert(users, redis.call('HGET', rk(room, 'user'), k))
  end
  return '{"room":' .. json_str(room) .. ',"room_session":' .. json_str(epoch) .. ',"users":[' .. table.concat(users, ',')
    .. '],' .. streams_and_extra(room) .. '}'
end

local function admin_rooms()
  local rooms = redis.call('SMEMBERS', P .. ':rooms')
  table.sort(rooms)
  local out = {'ok', ''}
  for _, room in ipairs(rooms) do
    local info = room_info(room)
    if info then table.insert(out, info) end
  end
  return out
end

local function stats()
  local sessions = redis.call('ZCARD', P .. ':deadline') + redis.call('ZCARD', P .. ':retain')
  return {'ok', '{"sessions":' .. sessions .. ',"rooms":' .. redis.call('SCARD', P .. ':rooms') .. ',"streams":'
    .. redis.call('HLEN', P .. ':streams') .. '}'}
end

-- retell KEY...: this node did not hear its control channel for a while (its subscriber was
-- connecting), so a `kicked` another node published for one of these sessions may be lost, and
-- its client would stay in a room the server took it out of. Tell each pending kick again (a
-- client ignores a kick of a room it is not in). Only the frame: the connection may be newer.
local function retell(keys)
  for _, key in ipairs(keys) do
    if redis.call('HGET', sk(key), 'node') == NODE then
      local k = redis.call('HGETALL', sk(key, 'kicked'))
      for i = 1, #k, 2 do
        local extended = redis.call('HGET', sk(key, 'kext'), k[i])
        local membership = redis.call('HGET', sk(key, 'kord'), k[i])
        to_session(key, 'frame', kicked_frame(k[i], k[i + 1], extended or nil), k[i], membership or nil)
      end
    end
  end
  return {'ok', ''}
end

local function dispatch_more(op)
  if op == 'resume' then return resume(ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]) end
  if op == 'touch' then
    local a = {}
    for i = 7, #ARGV do table.insert(a, ARGV[i]) end
    return touch(a)
  end
  if op == 'reap' then return reap() end
  if op == 'retell' then
    local a = {}
    for i = 7, #ARGV do table.insert(a, ARGV[i]) end
    return retell(a)
  end
  if op == 'admin_kick' then return admin_kick(ARGV[7], ARGV[8], ARGV[9]) end
  if op == 'admin_close' then return admin_close(ARGV[7], ARGV[8]) end
  if op == 'room' then
    local info = room_info(ARGV[7])
    if info then return {'ok', info} end
    return {'no', ''}
  end
  if op == 'rooms' then return admin_rooms() end
  if op == 'stats' then return stats() end
  return redis.error_reply('unknown parlor operation ' .. tostring(op))
end
