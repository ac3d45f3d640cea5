-- wrk script: every request is a scan from one of $PHONES phones (default
-- 5000) behind a trusted proxy, with a real phone browser's agent. Requests
-- are built once in init and cycled, so wrk spends its share of the two
-- cores sending, not formatting strings.
local reqs = {}
local n = 0
local i = 0

function init(args)
  local phones = tonumber(os.getenv("PHONES") or "5000")
  local path = wrk.path
  -- each wrk thread starts at a different phone
  local offset = math.random(0, phones - 1)
  for p = 0, phones - 1 do
    local k = (p + offset) % phones
    local ip = string.format("10.%d.%d.%d", math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256)
    reqs[p + 1] = wrk.format("GET", path, {
      ["User-Agent"] = "Mozilla/5.0 (Linux; Android 13; SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0 Mobile Safari/537.36 Zalo android/12100621 ZaloTheme/light ZaloLanguage/vi",
      ["X-Forwarded-For"] = ip,
    })
  end
  n = phones
end

function request()
  i = i % n + 1
  return reqs[i]
end
