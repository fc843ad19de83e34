#!/usr/bin/env python3
"""What this machine charges for the first write to a page of memory.

    perf/first_touch.py [MiB=2000] [idle_seconds=10]

Maps MiB of anonymous memory and writes one byte per 4 KiB page, three times: on fresh memory,
again at once (the pages the first pass freed), and after idle_seconds. On bare metal the three
agree (~0.3-1.5 us per page, mostly zeroing). A VM whose host backs guest memory lazily and
takes freed pages back (virtio free page reporting, DAMON reclaim) charges a host fault for
each page it has not backed: the first and the last pass then cost several times the second.
Every page-cache page a benchmark writes into can carry that cost, for any server alike.
"""
import mmap
import sys
import time

PAGE_BYTES = 4096


def touch_us_per_page(size_bytes):
    memory = mmap.mmap(-1, size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    started = time.perf_counter()
    for offset in range(0, size_bytes, PAGE_BYTES):
        memory[offset] = 1
    elapsed = time.perf_counter() - started
    memory.close()
    return elapsed / (size_bytes // PAGE_BYTES) * 1e6


def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    idle_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    size_bytes = size_mib << 20
    print(f"fresh memory:          {touch_us_per_page(size_bytes):.2f} us per page")
    print(f"just freed, again:     {touch_us_per_page(size_bytes):.2f} us per page")
    time.sleep(idle_seconds)
    print(f"after {idle_seconds:g} s idle:      {touch_us_per_page(size_bytes):.2f} us per page")


if __name__ == "__main__":
    main()
