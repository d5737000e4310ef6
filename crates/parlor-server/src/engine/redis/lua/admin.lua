-- Parlor's Redis engine: the admin API's operations (src/engine/admin.rs; the memory engine's
-- memory/admin.rs), one script run each. Appended after sessions.lua, before ops.lua, which
-- dispatches ARGV[6] to admin_ops. Events the server causes have no author (0): every member gets
-- them; the server appears as SERVER_USER.

local admin_ops = {}
local SERVER_USER = '{"id":"$server","name":"server"}'

-- room_page AFTER LIMIT: up to LIMIT rooms whose ids sort after AFTER ('' for the first page),
-- each an item; the payload is the last id when more follow, else ''.
function admin_ops.room_page()
  local after, limit = ARGV[7], tonumber(ARGV[8])
  local rooms = redis.call('SMEMBERS', P .. ':rooms')
  table.sort(rooms)
  local out, last, more = {'ok', ''}, nil, false
  for _, room in ipairs(rooms) do
    if after == '' or room > after then
      if #out - 2 >= limit then
        more = true
        break
      end
      local info = room_info(room)
      if info then
        table.insert(out, info)
        last = room
      end
    end
  end
  if more and last then out[2] = last end
  return out
end

-- server_message ROOM KIND MESSAGE TIME_MS: a broadcast or barrage from the server.
function admin_ops.server_message()
  local room, kind, message, time_ms = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  local meta = rk(room, 'meta')
  if redis.call('EXISTS', meta) == 0 then return {'no', 'NoSuchRoom'} end
  local id = tostring(tonumber(redis.call('HGET', meta, 'rseq')) + 1)
  local body = '"kind":"' .. kind .. '","message_id":"' .. id .. '","from":' .. SERVER_USER
    .. ',"message":' .. json_str(message) .. ',"time_ms":' .. time_ms
  local seq = emit(room, 'room', body, nil, true)
  return {'ok', '{"seq":' .. seq .. ',"message_id":"' .. id .. '"}'}
end

-- server_command ROOM TO COMMAND TIME_MS: a command from the server on the direct channel of
-- the members named in TO (a JSON list; every member when empty). The payload is the count.
function admin_ops.server_command()
  local room, to, command, time_ms = ARGV[7], cjson.decode(ARGV[8]), ARGV[9], ARGV[10]
  if redis.call('EXISTS', rk(room, 'meta')) == 0 then return {'no', 'NoSuchRoom'} end
  local wanted = nil
  if #to > 0 then
    wanted = {}
    for _, u in ipairs(to) do wanted[u] = true end
  end
  local n = 0
  for _, r in ipairs(redis.call('ZRANGE', rk(room, 'ord'), 0, -1)) do
    local uid = redis.call('HGET', sk(r), 'uid')
    if uid and (wanted == nil or wanted[uid]) then
      local seq = redis.call('HINCRBY', sk(r), 'dseq', 1)
      local frame = '{"t":"event","room":' .. json_str(room) .. ',"ch":"direct","seq":' .. seq
        .. ',"kind":"command","from":' .. SERVER_USER .. ',"command":' .. json_str(command) .. ',"time_ms":' .. time_ms .. '}'
      redis.call('XADD', sk(r, 'direct'), seq .. '-1', 'f', frame, 't', NOW, 'm', '0', 'a', 0)
      trim(sk(r, 'direct'), nil)
      to_session(r, 'frame', frame)
      n = n + 1
    end
  end
  return {'ok', tostring(n)}
end

-- server_room_extra ROOM KEY VALUE TIME_MS: room extra info set by the server.
function admin_ops.server_room_extra()
  local room, k, value, time_ms = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  if redis.call('EXISTS', rk(room, 'meta')) == 0 then return {'no', 'NoSuchRoom'} end
  if redis.call('HEXISTS', rk(room, 'ex'), k) == 0 and redis.call('HLEN', rk(room, 'ex')) >= CFG.max_extra_keys then
    return {'no', 'TooManyExtraKeys'}
  end
  local fields = '"key":' .. json_str(k) .. ',"value":' .. json_str(value) .. ',"user":' .. SERVER_USER .. ',"time_ms":' .. time_ms
  redis.call('HSET', rk(room, 'ex'), k, '{' .. fields .. '}')
  hook(room, 'room_extra_updated', '"extra":{' .. fields .. '}')
  return {'ok', tostring(emit(room, 'room', '"kind":"room_extra",' .. fields, nil, false))}
end

-- delete_stream ROOM STREAM: stream_delete reason 4, to every member (the publisher too).
function admin_ops.delete_stream()
  local room, id = ARGV[7], ARGV[8]
  if redis.call('EXISTS', rk(room, 'meta')) == 0 then return {'no', 'NoSuchRoom'} end
  local stream = redis.call('HGET', rk(room, 'st'), id)
  if not stream then return {'no', 'NoSuchStream'} end
  redis.call('HDEL', rk(room, 'st'), id)
  redis.call('HDEL', rk(room, 'own'), id)
  redis.call('HDEL', P .. ':streams', id)
  hook_stream_deleted(room, stream, 4)
  local body = '"kind":"stream_delete","streams":[' .. stream .. '],"reason":4'
  return {'ok', tostring(emit(room, 'room', body, nil, false))}
end

local function reconnect_key(key, refusal)
  if not key or redis.call('EXISTS', sk(key)) == 0 then return {'no', refusal} end
  to_session(key, 'close', 4010, 'reconnect asked by the server', false)
  return {'ok', redis.call('HGET', sk(key), 'pub')}
end

-- reconnect_session PUBLIC_ID / reconnect_member ROOM USER: close the session's connection with
-- 4010 on whichever node serves it.
function admin_ops.reconnect_session()
  local key = redis.call('GET', P .. ':pub:' .. ARGV[7])
  return reconnect_key(key, 'NoSuchSession')
end

function admin_ops.reconnect_member()
  local key = redis.call('HGET', rk(ARGV[7], 'uid'), ARGV[8])
  return reconnect_key(key, 'NoSuchUser')
end
