"""The Lua scripts of ``RedisState``: each runs atomically in Redis, so every check of a batch of
requests and every write it makes happen as one step, whatever the other processes do.

Times are integer microseconds of the Redis server's clock (``TIME``), so processes on hosts
whose clocks disagree still share one window; a test may pass its own ``now`` instead.
Keys of a counter ``<prefix><counter>``: ``:l`` the sliding log (sorted set, member -> admission
time), ``:t`` its tokens (hash, member -> tokens, plus ``sum``), ``:c`` the concurrency leases
(sorted set, member -> lease expiry). Members are ``<process nonce>:<n>``, never ``sum``.
"""

from __future__ import annotations

_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

#: ARGV: now|"", window, lease ttl, concurrency retry (all us), prefix, then the requests as JSON:
#: ``[[member, tokens, [[[counter, rpm, tpm, concurrency], ...], ...]], ...]`` (groups of limits;
#: -1: not limited), then the settled tickets as JSON, applied first:
#: ``[[member, tokens, [[counter, flags], ...]], ...]`` (tokens -1: keep the estimate; flags 1:
#: the counter has tpm, 2: it holds a lease, summed). JSON, because redis-py encodes each
#: argument in Python (~2 us apiece); one script for both, so a settle rides on the next batch
#: of admissions instead of taking a round trip of its own.
#: Returns JSON: per request the group admitted (0-based, -1: refused), the number of groups
#: checked, and per limit checked: ok, requests, tokens, inflight, reset, retry (-1: never).
ADMIT = (
    _NOW
    + """
local W = tonumber(ARGV[2])
local TTL = tonumber(ARGV[3])
local CONC_RETRY = tonumber(ARGV[4])
local P = ARGV[5]
local reqs = cjson.decode(ARGV[6])
local settled = cjson.decode(ARGV[7])
local EXP = math.floor(W / 1000) + 1000
local CEXP = math.floor(TTL / 1000) + 1000
local CHUNK = 500
local out = {}

for _, it in ipairs(settled) do
  local member, tokens = it[1], it[2]
  for _, l in ipairs(it[3]) do
    local base = P .. l[1]
    local flags = l[2]
    if flags % 2 == 1 and tokens >= 0 then
      local t = base .. ':t'
      local old = redis.call('HGET', t, member)
      if old then
        redis.call('HSET', t, member, tokens)
        redis.call('HINCRBY', t, 'sum', tokens - tonumber(old))
      end
    end
    if flags >= 2 then redis.call('ZREM', base .. ':c', member) end
  end
end

local function tokens_of(t, members)
  local vals = {}
  for a = 1, #members, CHUNK do
    local part = {unpack(members, a, math.min(a + CHUNK - 1, #members))}
    local v = redis.call('HMGET', t, unpack(part))
    for _, x in ipairs(v) do vals[#vals + 1] = x and tonumber(x) or 0 end
  end
  return vals
end

local function trim(base, tracked)
  local z = base .. ':l'
  local cut = now - W
  if tracked then
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', cut)
    if #old > 0 then
      local t = base .. ':t'
      local s = 0
      for _, x in ipairs(tokens_of(t, old)) do s = s + x end
      for a = 1, #old, CHUNK do
        redis.call('HDEL', t, unpack(old, a, math.min(a + CHUNK - 1, #old)))
      end
      if s ~= 0 then redis.call('HINCRBY', t, 'sum', -s) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', cut)
end

local function check(base, rpm, tpm, conc, tokens)
  local z = base .. ':l'
  local cnt, sum, held, reset, wait, ok = 0, 0, 0, 0, 0, 1
  local never = false
  if rpm >= 0 or tpm >= 0 then
    trim(base, tpm >= 0)
    cnt = redis.call('ZCARD', z)
    if cnt > 0 then
      local newest = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
      reset = tonumber(newest[2]) + W - now
    end
    if tpm >= 0 then sum = tonumber(redis.call('HGET', base .. ':t', 'sum') or '0') end
    if rpm >= 0 and cnt + 1 > rpm then
      ok = 0
      local k = redis.call('ZRANGE', z, cnt - rpm, cnt - rpm, 'WITHSCORES')
      local w = tonumber(k[2]) + W - now
      if w > wait then wait = w end
    end
    if tpm >= 0 and sum + tokens > tpm then
      ok = 0
      if tokens > tpm then
        never = true
      else
        local need = sum + tokens - tpm
        local all = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
        local members = {}
        for a = 1, #all, 2 do members[#members + 1] = all[a] end
        local toks = tokens_of(base .. ':t', members)
        local acc = 0
        for a = 1, #toks do
          acc = acc + toks[a]
          if acc >= need then
            local w = tonumber(all[2 * a]) + W - now
            if w > wait then wait = w end
            break
          end
        end
      end
    end
  end
  if conc >= 0 then
    local c = base .. ':c'
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    held = redis.call('ZCARD', c)
    if held + 1 > conc then
      ok = 0
      if CONC_RETRY > wait then wait = CONC_RETRY end
    end
  end
  if never then wait = -1 end
  return ok, cnt, sum, held, reset, wait
end

local function apply(base, rpm, tpm, conc, member, tokens)
  if rpm >= 0 or tpm >= 0 then
    local z = base .. ':l'
    redis.call('ZADD', z, now, member)
    redis.call('PEXPIRE', z, EXP)
    if tpm >= 0 then
      local t = base .. ':t'
      redis.call('HSET', t, member, tokens)
      redis.call('HINCRBY', t, 'sum', tokens)
      redis.call('PEXPIRE', t, EXP)
    end
  end
  if conc >= 0 then
    local c = base .. ':c'
    redis.call('ZADD', c, now + TTL, member)
    redis.call('PEXPIRE', c, CEXP)
  end
end

for _, req in ipairs(reqs) do
  local member, tokens, groups = req[1], req[2], req[3]
  local chosen = -1
  local checked = 0
  local stats = {}
  for g, group in ipairs(groups) do
    checked = g
    local all_ok = true
    for _, l in ipairs(group) do
      local ok, cnt, sum, held, reset, wait = check(P .. l[1], l[2], l[3], l[4], tokens)
      stats[#stats + 1] = ok
      stats[#stats + 1] = cnt
      stats[#stats + 1] = sum
      stats[#stats + 1] = held
      stats[#stats + 1] = reset
      stats[#stats + 1] = wait
      if ok == 0 then all_ok = false end
    end
    if all_ok then
      chosen = g - 1
      for _, l in ipairs(group) do apply(P .. l[1], l[2], l[3], l[4], member, tokens) end
      break
    end
  end
  out[#out + 1] = chosen
  out[#out + 1] = checked
  for _, v in ipairs(stats) do out[#out + 1] = v end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""
)

#: ARGV: now|"", lease ttl (us), prefix, then the leases as JSON: ``[[counter, member], ...]``.
#: Only leases still held are extended (XX): an expired one is not brought back.
RENEW = (
    _NOW
    + """
local TTL = tonumber(ARGV[2])
local P = ARGV[3]
local kept = 0
for _, l in ipairs(cjson.decode(ARGV[4])) do
  kept = kept + redis.call('ZADD', P .. l[1] .. ':c', 'XX', 'CH', now + TTL, l[2])
end
return kept
"""
)

#: ARGV: now|"", prefix, channel, deployment, reason, then the kind: "cool" seconds(us) |
#: "fail" window(us) allowed_fails cooldown(us) member | "recover".
#: Returns: cooldown set (us, 0: none), cooldown left (us), failures counted.
HEALTH = (
    _NOW
    + """
local P = ARGV[2]
local chan = ARGV[3]
local d = ARGV[4]
local reason = ARGV[5]
local kind = ARGV[6]
local f = P .. 'f:' .. d
local cool = P .. 'cool'
local set, n = 0, 0
if kind == 'cool' then
  set = tonumber(ARGV[7])
  redis.call('HSET', cool, d, now + set)
  redis.call('DEL', f)
elseif kind == 'fail' then
  local window = tonumber(ARGV[7])
  redis.call('ZADD', f, now, ARGV[10])
  redis.call('ZREMRANGEBYSCORE', f, '-inf', now - window)
  n = redis.call('ZCARD', f)
  redis.call('PEXPIRE', f, math.floor(window / 1000) + 1000)
  if n >= tonumber(ARGV[8]) then
    set = tonumber(ARGV[9])
    redis.call('HSET', cool, d, now + set)
    redis.call('DEL', f)
    n = 0
  end
else
  redis.call('HDEL', cool, d)
  redis.call('DEL', f)
  reason = ''
end
local left = 0
local u = redis.call('HGET', cool, d)
if u then
  left = tonumber(u) - now
  if left <= 0 then
    left = 0
    redis.call('HDEL', cool, d)
  end
end
redis.call('PUBLISH', chan, cjson.encode({d = d, u = left, f = n, e = reason}))
return {set, left, n}
"""
)

#: ARGV: now|"", prefix. Returns deployment, cooldown left (us), ... for every cooling one.
COOLING = (
    _NOW
    + """
local cool = ARGV[2] .. 'cool'
local all = redis.call('HGETALL', cool)
local out = {}
for a = 1, #all, 2 do
  local left = tonumber(all[a + 1]) - now
  if left > 0 then
    out[#out + 1] = all[a]
    out[#out + 1] = left
  else
    redis.call('HDEL', cool, all[a])
  end
end
return out
"""
)

#: ARGV: prefix, channel, key id. Returns the new version of the keys.
KEY_CHANGED = """
local v = redis.call('INCR', ARGV[1] .. 'keys:v')
redis.call('PUBLISH', ARGV[2], v .. ':' .. ARGV[3])
return v
"""
