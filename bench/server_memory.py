#!/usr/bin/env python3
"""Measures the server's peak resident memory under its largest allowed requests.

Starts `asyncdiffusion serve` with the given limits, then keeps 2 x --max-queue clients posting
A1111 img2img requests whose uploads sit at the limits (a 20 MiB body of incompressible pixels,
and a 16-megapixel image that compresses into a small body), at the largest output size and
image count, for --seconds. Prints the server's baseline, peak (VmHWM) and final resident memory.
"""
import argparse, base64, json, os, socket, struct, subprocess, threading, time, urllib.error, urllib.request, zlib


def png(width, height, noise):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = (lambda: b"\0" + os.urandom(width * 3)) if noise else (lambda: b"\0" + b"\x80" * (width * 3))
    raw = b"".join(row() for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1 if noise else 9)) + chunk(b"IEND", b""))


def rss(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--cli", required=True, help="path to AsyncDiffusion.Cli.dll")
    a.add_argument("--model", required=True)
    a.add_argument("--max-queue", type=int, default=16)
    a.add_argument("--max-size", type=int, default=512)
    a.add_argument("--max-images", type=int, default=4)
    a.add_argument("--seconds", type=int, default=90)
    a.add_argument("--route", choices=["img2img", "txt2img"], default="img2img", help="txt2img: the same outputs without uploads")
    args = a.parse_args()

    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(["dotnet", args.cli, "serve", "--model", args.model, "--urls", base, "--max-queue", str(args.max_queue),
                               "--max-size", str(args.max_size), "--max-images", str(args.max_images), "--max-steps", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1); break
            except Exception:
                time.sleep(0.1)
        side = int((15 * 1024 * 1024 / 3) ** 0.5)  # base64 of ~15 MiB of noise stays under the 20 MiB body limit
        uploads = [base64.b64encode(png(side, side, True)).decode(), base64.b64encode(png(4000, 4000, False)).decode()]
        print(f"uploads: {side}x{side} noise ({len(uploads[0]) / 2**20:.1f} MiB of base64), 4000x4000 flat ({len(uploads[1]) / 2**20:.2f} MiB)")
        baseline = rss(server.pid, "VmRSS")
        stop = time.time() + args.seconds
        counts = {}
        lock = threading.Lock()

        def client(i):
            while time.time() < stop:
                body = json.dumps({"prompt": "x", "steps": 2, "cfg_scale": 1, "width": args.max_size, "height": args.max_size,
                                   "batch_size": args.max_images, "denoising_strength": 0.5, "init_images": [uploads[i % 2]]}).encode()
                req = urllib.request.Request(f"{base}/sdapi/v1/{args.route}", body, {"Content-Type": "application/json"})
                try:
                    code = urllib.request.urlopen(req, timeout=600).status
                except urllib.error.HTTPError as e:
                    code = e.code
                    if code == 429: time.sleep(0.2)
                with lock: counts[code] = counts.get(code, 0) + 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(2 * args.max_queue)]
        for t in threads: t.start()
        for t in threads: t.join()
        time.sleep(2)
        print(f"responses: {dict(sorted(counts.items()))}")
        print(f"resident memory: baseline {baseline / 2**20:.0f} MiB, peak {rss(server.pid, 'VmHWM') / 2**20:.0f} MiB, "
              f"after {rss(server.pid, 'VmRSS') / 2**20:.0f} MiB")
    finally:
        server.terminate(); server.wait()


if __name__ == "__main__":
    main()
