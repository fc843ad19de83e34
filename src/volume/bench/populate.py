# Upload COUNT files of SIZE bytes to a volume server: populate.py PORT SIZE KEYBASE_HEX COUNT VID[,VID...]
import http.client, sys
# populate.py PORT SIZE KEYBASE COUNT VID[,VID...]
port, size, keybase, count, vids = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3], 16), int(sys.argv[4]), sys.argv[5].split(',')
conn = http.client.HTTPConnection('127.0.0.1', port)
body = b'k' * size
for i in range(count):
    vid = vids[i % len(vids)]
    path = '/%s,%x%08x' % (vid, keybase + i, 0x12345678)
    conn.request('POST', path, body=body, headers={'Content-Type': 'application/octet-stream'})
    r = conn.getresponse(); r.read()
    if r.status != 201:
        sys.exit('POST %s -> %d' % (path, r.status))
