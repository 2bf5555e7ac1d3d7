-- Check every rule of one request and consume all or nothing, atomically.
-- KEYS[i]: the rule's counter. ARGV[1]: now (ms). ARGV[2]: "1" to consume, "0" to only look.
-- Then four values per rule: kind ("b" bucket, "c" counter), capacity, and
--   bucket:  tokens per minute, unused
--   counter: expiry (Unix s), seed (the value of a counter not yet in Redis)
-- Returns { index of the first refusing rule or 0, value of each rule before this request }:
-- a bucket's tokens after refill, in thousandths; a counter's count.
local now = tonumber(ARGV[1])
local consume = ARGV[2] == "1"
local values = {}
local rejected = 0
for i = 1, #KEYS do
  local o = 3 + (i - 1) * 4
  local kind, cap, p1, p2 = ARGV[o], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  local value
  if kind == "b" then
    local state = redis.call("HMGET", KEYS[i], "t", "a")
    local tokens, at = tonumber(state[1]), tonumber(state[2])
    if tokens == nil then
      value = cap
    else
      value = math.min(cap, tokens + math.max(0, now - at) * p1 / 60000)
    end
    if value < 1 and rejected == 0 then rejected = i end
  else
    value = tonumber(redis.call("GET", KEYS[i])) or p2
    if value >= cap and rejected == 0 then rejected = i end
  end
  values[i] = value
end
if consume and rejected == 0 then
  for i = 1, #KEYS do
    local o = 3 + (i - 1) * 4
    local kind, cap, p1, p2 = ARGV[o], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
    if kind == "b" then
      redis.call("HSET", KEYS[i], "t", tostring(values[i] - 1), "a", now)
      redis.call("PEXPIRE", KEYS[i], math.ceil(cap * 60000 / p1) + 1000)
    else
      redis.call("SET", KEYS[i], values[i] + 1, "EXAT", p1)
    end
  end
end
local out = { rejected }
for i = 1, #KEYS do
  if ARGV[3 + (i - 1) * 4] == "b" then
    out[i + 1] = math.floor(values[i] * 1000)
  else
    out[i + 1] = values[i]
  end
end
return out
