-- Parlor's Redis engine: the operations (the memory engine's requests.rs, resume.rs and tick),
-- dispatched on ARGV[6]. Appended to lib.lua into one script.

local OP -- set at every call (`main`)

local function member(key, room)
  if redis.call('EXISTS', sk(key)) == 0 then return false, 'NoSession' end
  if redis.call('HEXISTS', sk(key, 'rooms'), room) == 0 then return false, 'NotInRoom' end
  if redis.call('HEXISTS', rk(room, 'mem'), key) == 0 then
    -- The room's state was lost (a Redis failover with lost writes): the membership is stale.
    redis.call('HDEL', sk(key, 'rooms'), room)
    return false, 'NotInRoom'
  end
  return true
end

local function room_event(seq) return '{"seq":{"room":' .. seq .. '}}' end

local function login(key, room, config, exp, pub)
  if redis.call('HEXISTS', sk(key, 'rooms'), room) == 1 then return nil, 'AlreadyInRoom' end
  if redis.call('HLEN', sk(key, 'rooms')) >= CFG.max_rooms then return nil, 'TooManyRooms' end
  local m = { c = cjson.decode(config), exp = tonumber(exp), pub = tonumber(pub), w = 0 }
  return enter(key, room, m)
end

-- Each returns (payload JSON text) or (nil, refusal), and the answer to remember.
local ops = {}

function ops.login(key, a)
  local state, refusal = login(key, a[1], a[2], a[3], a[4])
  return state, refusal, '{"k":"login","room":' .. json_str(a[1]) .. '}'
end

function ops.logout(key, a)
  local ok, refusal = member(key, a[1])
  if not ok then return nil, refusal end
  return '{"seq":{' .. leave(key, a[1], 'logout') .. '}}'
end

function ops.switch(key, a)
  local ok, refusal = member(key, a[1])
  if not ok then return nil, refusal end
  leave(key, a[1], 'logout')
  if a[3] == '' then return nil, 'Login:' .. a[4] end
  local state, r = login(key, a[2], a[3], a[4], a[5])
  return state, r, '{"k":"login","room":' .. json_str(a[2]) .. '}'
end

function ops.publish(key, a)
  local room, id, extra = a[1], a[2], a[3]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  local m = cjson.decode(redis.call('HGET', sk(key, 'rooms'), room))
  if m.pub ~= 1 then return nil, 'NoPublishPrivilege' end
  local owner = redis.call('HGET', P .. ':streams', id)
  if owner then
    if owner == key .. '|' .. room then return '{}' end
    return nil, 'StreamIdTaken'
  end
  local stream = '{"id":' .. json_str(id) .. ',"user":' .. redis.call('HGET', sk(key), 'user') .. ',"extra":' .. json_str(extra) .. '}'
  redis.call('HSET', rk(room, 'st'), id, stream)
  redis.call('HSET', rk(room, 'own'), id, key)
  redis.call('HSET', P .. ':streams', id, key .. '|' .. room)
  hook(room, 'stream_added', '"stream":' .. stream)
  -- Hosts stay exact (§9.10): an arrival still in the large room's batch is told at once, on
  -- its own, before the stream; to everyone, like the batch it leaves (its client skips itself).
  local arrival = presence.take_arrival(room, redis.call('HGET', sk(key), 'uid'))
  if arrival then emit(room, 'users', '"kind":"user_add","users":[' .. arrival .. ']', nil, false) end
  return room_event(emit(room, 'room', '"kind":"stream_add","streams":[' .. stream .. ']', key, false))
end

function ops.unpublish(key, a)
  local room, id = a[1], a[2]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  if redis.call('HGET', rk(room, 'own'), id) ~= key then return nil, 'NotPublishing' end
  local stream = redis.call('HGET', rk(room, 'st'), id)
  redis.call('HDEL', rk(room, 'st'), id)
  redis.call('HDEL', rk(room, 'own'), id)
  redis.call('HDEL', P .. ':streams', id)
  hook_stream_deleted(room, stream, 1)
  return room_event(emit(room, 'room', '"kind":"stream_delete","streams":[' .. stream .. '],"reason":1', key, false))
end

function ops.stream_extra(key, a)
  local room, id, extra = a[1], a[2], a[3]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  if redis.call('HGET', rk(room, 'own'), id) ~= key then return nil, 'NotPublishing' end
  local stream = '{"id":' .. json_str(id) .. ',"user":' .. redis.call('HGET', sk(key), 'user') .. ',"extra":' .. json_str(extra) .. '}'
  redis.call('HSET', rk(room, 'st'), id, stream)
  return room_event(emit(room, 'room', '"kind":"stream_extra","streams":[' .. stream .. ']', key, false))
end

function ops.room_extra(key, a)
  local room, k, value, time_ms = a[1], a[2], a[3], a[4]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  if redis.call('HEXISTS', rk(room, 'ex'), k) == 0 and redis.call('HLEN', rk(room, 'ex')) >= CFG.max_extra_keys then
    return nil, 'TooManyExtraKeys'
  end
  local user = redis.call('HGET', sk(key), 'user')
  local fields = '"key":' .. json_str(k) .. ',"value":' .. json_str(value) .. ',"user":' .. user .. ',"time_ms":' .. time_ms
  redis.call('HSET', rk(room, 'ex'), k, '{' .. fields .. '}')
  hook(room, 'room_extra_updated', '"extra":{' .. fields .. '}')
  return room_event(emit(room, 'room', '"kind":"room_extra",' .. fields, key, false))
end

function ops.message(key, a)
  local room, kind, message, time_ms = a[1], a[2], a[3], a[4]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  local meta = rk(room, 'meta')
  local w = redis.call('HMGET', meta, 'mw_start', 'mw_count')
  local start, count = tonumber(w[1] or '0'), tonumber(w[2] or '0')
  if NOW - start >= 1000 then start, count = NOW, 0 end
  if count >= CFG.room_message_rate then return nil, 'RoomMessageRate' end
  redis.call('HSET', meta, 'mw_start', start, 'mw_count', count + 1)
  -- The message id is the event's seq: unique within the room's life, as in the memory engine.
  local id = tostring(tonumber(redis.call('HGET', meta, 'rseq')) + 1)
  local body = '"kind":"' .. kind .. '","message_id":"' .. id .. '","from":' .. redis.call('HGET', sk(key), 'user')
    .. ',"message":' .. json_str(message) .. ',"time_ms":' .. time_ms
  local seq = emit(room, 'room', body, key, true)
  return '{"seq":{"room":' .. seq .. '},"message_id":"' .. id .. '"}'
end

function ops.command(key, a)
  local room, to, command, time_ms = a[1], cjson.decode(a[2]), a[3], a[4]
  local ok, refusal = member(key, room)
  if not ok then return nil, refusal end
  local wanted = nil
  if #to > 0 then
    wanted = {}
    for _, u in ipairs(to) do wanted[u] = true end
  end
  local from = redis.call('HGET', sk(key), 'user')
  for _, r in ipairs(redis.call('ZRANGE', rk(room, 'ord'), 0, -1)) do
    if r ~= tostring(key) then
      local uid = redis.call('HGET', sk(r), 'uid')
      if uid and (wanted == nil or wanted[uid]) then
        local seq = redis.call('HINCRBY', sk(r), 'dseq', 1)
        local frame = '{"t":"event","room":' .. json_str(room) .. ',"ch":"direct","seq":' .. seq
          .. ',"kind":"command","from":' .. from .. ',"command":' .. json_str(command) .. ',"time_ms":' .. time_ms .. '}'
        redis.call('XADD', sk(r, 'direct'), seq .. '-1', 'f', frame, 't', NOW, 'm', '0', 'a', key)
        trim(sk(r, 'direct'), nil)
        to_session(r, 'frame', frame)
      end
    end
  end
  return '{}'
end

function ops.renew(key, a)
  local only, exp, pub, claims = a[1], tonumber(a[2]), tonumber(a[3]), a[4]
  if redis.call('EXISTS', sk(key)) == 0 then return nil, 'NoSession' end
  local flat = redis.call('HGETALL', sk(key, 'rooms'))
  for i = 1, #flat, 2 do
    if only == '' or only == flat[i] then
      local m = cjson.decode(flat[i + 1])
      m.exp, m.pub, m.w = exp, pub, 0
      redis.call('HSET', sk(key, 'rooms'), flat[i], cjson.encode(m))
      track_token(key, flat[i], m)
    end
  end
  if only == '' then redis.call('HSET', sk(key), 'claims', claims) end
  return '{}'
end

function ops.refused(key, a)
  return nil, 'Refused', '{"k":"refused","code":' .. a[1] .. ',"message":' .. json_str(a[2]) .. '}'
end

-- The remembered answer of a request, replayed for a repeat.
local function recall(key, raw)
  local a = cjson.decode(raw)
  if a.k == 'login' then
    if redis.call('HEXISTS', sk(key, 'rooms'), a.room) == 1 then
      -- The first run's answer was lost (a call that timed out, rerun by the node or retried
      -- by the client, maybe on another node): the calling node may never have been told that
      -- the session is in the room. It is told now, at the seqs of this answer.
      local m = redis.call('HMGET', rk(a.room, 'meta'), 'epoch', 'rseq', 'useq')
      local notify = redis.call('HGET', rk(a.room, 'mem'), key) == '1'
      local ord = tonumber(redis.call('ZSCORE', rk(a.room, 'ord'), key))
      table.insert(items, cjson.encode({'at', a.room, tonumber(key), notify, tonumber(m[2]), tonumber(m[3]), m[1], ord}))
      return {'repeat', '{"k":"login","ok":' .. room_state(key, a.room) .. '}'}
    end
    local code = redis.call('HGET', sk(key, 'kicked'), a.room) or '1009005'
    return {'repeat', '{"k":"login","code":' .. code .. '}'}
  end
  return {'repeat', raw}
end

-- The answer, and the kicks the request made (`kicks_again` tells them again at a recall).
local function remember(key, id, answer)
  redis.call('HSET', sk(key, 'ans'), id, answer)
  if #KICKS > 0 then redis.call('HSET', sk(key, 'akick'), id, cjson.encode(KICKS)) end
  redis.call('RPUSH', sk(key, 'ansq'), id)
  if redis.call('LLEN', sk(key, 'ansq')) > CFG.answers then
    local gone = redis.call('LPOP', sk(key, 'ansq'))
    redis.call('HDEL', sk(key, 'ans'), gone)
    redis.call('HDEL', sk(key, 'akick'), gone)
  end
end

-- request KEY ID OP ARGS...: the exactly-once gate of §1, then the operation.
local function request(key, id, name, a)
  if redis.call('EXISTS', sk(key)) == 0 then return {'refusal', 'NoSession'} end
  local last = tonumber(redis.call('HGET', sk(key), 'last') or '0')
  -- A request counts as life.
  redis.call('HSET', sk(key), 'lf', NOW)
  redis.call('ZADD', P .. ':deadline', 'XX', NOW + CFG.timeout_ms, key)
  if id <= last then
    local raw = redis.call('HGET', sk(key, 'ans'), id)
    if raw then
      local kicked = redis.call('HGET', sk(key, 'akick'), id)
      if kicked then kicks_again(kicked) end
      return recall(key, raw)
    end
    return {'forgotten', ''}
  end
  redis.call('HSET', sk(key), 'last', id)
  local payload, refusal, answer = ops[name](key, a)
  if payload then
    remember(key, id, answer or ('{"k":"done","ok":' .. payload .. '}'))
    return {'done', payload}
  end
  if refusal ~= 'Refused' then answer = '{"k":"refusal","r":"' .. refusal .. '"}' end
  remember(key, id, answer)
  return {'refusal', refusal}
end

-- open KEY PUBLIC USER UID CLAIMS CONN: a new session bound to this node.
local function open(a)
  local key = a[1]
  redis.call('HSET', sk(key), 'pub', a[2], 'rt', a[3], 'user', a[4], 'uid', a[5], 'claims', a[6], 'off', '0',
    'last', 0, 'dseq', 0, 'node', NODE, 'conn', a[7], 'lf', NOW)
  redis.call('SET', P .. ':pub:' .. a[2], key)
  redis.call('ZADD', P .. ':deadline', NOW + CFG.timeout_ms, key)
  return {'ok', ''}
end

-- members KEY ROOM CURSOR LIMIT: one page of the room's members by user id (protocol §9.9) for
-- a session in it (KEY '': for the admin API, any room that exists): {'ok', next cursor (''
-- on the last page), count, user JSON...}.
local function members_page(key, room, cursor, limit)
  if key == '' then
    if redis.call('EXISTS', rk(room, 'meta')) == 0 then return {'refusal', 'NoSuchRoom'} end
  elseif redis.call('HEXISTS', rk(room, 'mem'), key) == 0 then
    return {'refusal', 'NotInRoom'}
  end
  local count = redis.call('HLEN', rk(room, 'mem'))
  if count > 0 and redis.call('EXISTS', rk(room, 'lex')) == 0 then
    -- A room entered before `lex` existed (an older Parlor): made once from `uid`.
    for _, uid in ipairs(redis.call('HKEYS', rk(room, 'uid'))) do redis.call('ZADD', rk(room, 'lex'), 0, uid) end
  end
  local from = '-'
  if cursor ~= '' then from = '(' .. cursor end
  local ids = redis.call('ZRANGE', rk(room, 'lex'), from, '+', 'BYLEX', 'LIMIT', 0, limit + 1)
  local out = {'ok', '', tostring(count)}
  for i = 1, math.min(#ids, limit) do
    local k = redis.call('HGET', rk(room, 'uid'), ids[i])
    local user = k and redis.call('HGET', rk(room, 'user'), k)
    if user then table.insert(out, user) end
  end
  if #ids > limit then out[2] = ids[limit] end
  return out
end

-- One call: KEYS[1] routes it (the app's slot); ARGV as lib.lua says.
local function main(keys, args)
  begin(keys, args)
  OP = ARGV[6]
  local result
  if OP == 'open' then
    result = open({ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13]})
  elseif OP == 'request' then
    local a = {}
    for i = 10, #ARGV do table.insert(a, ARGV[i]) end
    result = request(ARGV[7], tonumber(ARGV[8]), ARGV[9], a)
  elseif OP == 'members' then
    result = members_page(ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]))
  elseif OP == 'bye' then
    end_session(ARGV[7])
    result = {'ok', ''}
  elseif admin_ops[OP] then
    result = admin_ops[OP]()
  else
    result = dispatch_more(OP)
  end
  for _, item in ipairs(items) do table.insert(result, item) end
  return result
end

-- engine/redis/mod.rs appends the registration of `main` under the library's name.
