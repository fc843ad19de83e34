-- wrk script: GET random fids among COUNT keys from KEYBASE spread over VIDS (env), as populate.py wrote them.
-- ONLY=v keeps the keys of volume v (to drive the core that owns v on its own port).
local paths = {}
local vids = {}
for v in string.gmatch(os.getenv("VIDS"), "[^,]+") do vids[#vids + 1] = v end
local keybase = tonumber(os.getenv("KEYBASE"), 16)
local count = tonumber(os.getenv("COUNT"))
local only = os.getenv("ONLY")
for i = 0, count - 1 do
  local vid = vids[(i % #vids) + 1]
  if only == nil or only == vid then
    paths[#paths + 1] = string.format("/%s,%x%08x", vid, keybase + i, 0x12345678)
  end
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
