-- POST SIZE-byte bodies to fresh keys (per wrk thread ranges) spread over VIDS.
local vids = {}
for v in string.gmatch(os.getenv("VIDS"), "[^,]+") do vids[#vids + 1] = v end
local body = string.rep("p", tonumber(os.getenv("SIZE")))
local content_type = "application/octet-stream"
-- MULTIPART=1: send the data as curl -F does (a multipart/form-data body, curl's boundary).
if os.getenv("MULTIPART") == "1" then
  local boundary = "------------------------d74496d66958873e"
  body = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
    .. "Content-Type: application/octet-stream\r\n\r\n" .. body .. "\r\n--" .. boundary .. "--\r\n"
  content_type = "multipart/form-data; boundary=" .. boundary
end
local keybase = tonumber(os.getenv("KEYBASE"), 16)
local next_thread = 0
setup = function(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
local counter = 0
request = function()
  counter = counter + 1
  local key = keybase + (thread_id or 0) * 100000000 + counter
  local path = string.format("/%s,%x%08x", vids[(counter % #vids) + 1], key, 0x12345678)
  return wrk.format("POST", path, {["Content-Type"] = content_type}, body)
end
