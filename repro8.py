import os, sys, threading, time, fcntl
import pashmap as pm
from pashmap_shm import ProcessContext

# stdout goes to a pipe nobody reads yet: fill it so the next write blocks
r, w = os.pipe()
os.dup2(w, 1)
os.set_blocking(1, False)
try:
    while True:
        os.write(1, b"x" * 4096)
except BlockingIOError:
    pass
os.set_blocking(1, True)

held = threading.Event()
def writer():
    held.set()
    sys.stdout.write("y" * 100000)  # blocks in raw write, holding the buffer lock
    sys.stdout.flush()

def before():
    if not held.is_set():
        threading.Thread(target=writer, daemon=True).start()
        held.wait(); time.sleep(0.1)
os.register_at_fork(before=before)
start = time.monotonic()
ctx = ProcessContext(1)
try:
    print_ = lambda *a: os.write(2, (" ".join(map(str, a)) + "\n").encode())
    print_("mapping")
    out = ctx.map(lambda wid, i, v: v, range(4), timeout=float(sys.argv[1]))
    print_("result", out, time.monotonic() - start)
except BaseException as e:
    print_("raised", type(e).__name__, e, time.monotonic() - start)
os._exit(0)
