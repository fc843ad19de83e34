-- wrk script: GET random fids among COUNT keys from KEYBASE spread over VIDS (env), as populate.py wrote them.
local paths = {}
local vids = {}
for v in string.gmatch(os.getenv("VIDS"), "[^,]+") do vids[#vids + 1] = v end
local keybase = tonumber(os.getenv("KEYBASE"), 16)
local count = tonumber(os.getenv("COUNT"))
for i = 0, count - 1 do
  paths[#paths + 1] = string.format("/%s,%x%08x", vids[(i % #vids) + 1], keybase + i, 0x12345678)
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
