"""Drives three running cluster nodes (see cluster-check.sh): jobs submitted to different nodes,
one node killed with SIGKILL while they run, then every accepted job must have finished once,
on a live node when it was re-run, with images equal (within 1/255 per channel, as batching
allows) to a fresh run of the same seed."""
import base64, json, os, signal, struct, sys, time, urllib.error, urllib.request, zlib

JOBS, STEPS = 30, 30
# Both runs name the guidance scale: the server default depends on the model (the built-in folder names 2.5).
CFG = 2.5


def call(method, url, body=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {url}: HTTP {e.code} {e.read()[:300]!r}")
    with r:
        raw = r.read()
        return r.status, (json.loads(raw) if r.headers.get_content_type() == "application/json" else raw)


def png_pixels(png):
    """RGB(A) 8-bit, non-interlaced PNG → (width, height, channels, bytes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), f"unsupported PNG (depth {depth}, colour type {color})"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, out, prev = zlib.decompress(idat), width * channels, bytearray(), bytearray(width * channels)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def main(nodes_file):
    nodes = {}
    for line in open(nodes_file):
        name, pid, url = line.split()
        nodes[name] = (int(pid), url)
    urls = [u for _, u in nodes.values()]
    victim, (victim_pid, _) = "node3", nodes["node3"]

    jobs = []
    for i in range(JOBS):
        body = {"prompt": f"cluster check {i}", "steps": STEPS, "seed": 1000 + i, "scheduler": "Euler a", "guidance_scale": CFG}
        status, job = call("POST", urls[i % 3] + "/api/v1/jobs", body, {"Idempotency-Key": f"check-{i}"})
        assert status == 202, f"job {i}: HTTP {status}"
        jobs.append((body, job["id"]))
    # A client retry with the same key (on another node) is the same job.
    _, again = call("POST", urls[1] + "/api/v1/jobs", jobs[0][0], {"Idempotency-Key": "check-0"})
    assert again["id"] == jobs[0][1], "an idempotent retry made a second job"

    deadline = time.time() + 60
    while True:
        view = call("GET", urls[0] + "/api/v1/cluster")[1]
        if any(n["name"] == victim and n["running"] > 0 for n in view["nodes"]): break
        assert time.time() < deadline, f"{victim} never ran a job"
        time.sleep(0.05)
    on_victim = {j["id"] for j in (call("GET", f"{urls[0]}/api/v1/jobs/{jid}")[1] for _, jid in jobs) if j["node"] == victim and j["state"] == "running"}
    os.kill(victim_pid, signal.SIGKILL)
    killed = time.time()
    print(f"killed {victim} while it ran {len(on_victim)} job(s)")
    live = [u for n, (_, u) in nodes.items() if n != victim]

    first_elsewhere, final = None, {}
    while len(final) < len(jobs):
        assert time.time() - killed < 180, f"only {len(final)} of {len(jobs)} jobs finished within 180 s of the kill"
        for _, jid in jobs:
            if jid in final: continue
            job = call("GET", f"{live[len(final) % 2]}/api/v1/jobs/{jid}")[1]
            # A job the victim ran (or any job that had to run again) seen on a live node; the victim may
            # also have committed its job just before the kill, and then only queued jobs re-run.
            moved = jid in on_victim or job.get("attempts", 1) > 1
            if moved and first_elsewhere is None and job["node"] not in (None, victim):
                first_elsewhere = time.time() - killed
            if job["state"] in ("succeeded", "failed", "cancelled"): final[jid] = job
        time.sleep(0.1)
    done_after = time.time() - killed

    rerun = 0
    for body, jid in jobs:
        job = final[jid]
        assert job["state"] == "succeeded", f"job {jid}: {job['state']} {job.get('error')}"
        assert job["seeds"] == [body["seed"]], f"job {jid}: seeds {job['seeds']}"
        if job["attempts"] > 1:
            rerun += 1
            assert job["node"] != victim, f"job {jid} re-ran but its result came from the killed node"
    assert rerun > 0 and on_victim, "the killed node's jobs should have run again elsewhere"
    view = call("GET", live[0] + "/api/v1/cluster")[1]
    assert view["reclaimed"] >= rerun, f"reclaimed {view['reclaimed']} < {rerun} re-run jobs"
    # Every accepted commit adds one to its node's count (the dead node's as last reported): never more than the jobs.
    committed = sum(n["succeeded"] for n in view["nodes"])
    assert committed <= len(jobs) + 1, f"{committed} commits for {len(jobs)} jobs (+1 for the idempotent retry check)"

    # Images: each re-run job and a few others against a fresh run of the same seed on a live node.
    checked = [j for j in jobs if final[j[1]]["attempts"] > 1][:6] + jobs[:3]
    for body, jid in checked:
        _, png = call("GET", f"{live[1]}/api/v1/jobs/{jid}/images/0")
        # The jobs API's "scheduler" is the sampler's name; A1111's is the schedule type, so it goes as sampler_name.
        a1111 = {k: v for k, v in body.items() if k != "scheduler"} | {"sampler_name": body["scheduler"], "cfg_scale": CFG}
        fresh = call("POST", live[0] + "/sdapi/v1/txt2img", a1111, timeout=120)[1]
        w1, h1, c1, a = png_pixels(png)
        w2, h2, c2, b = png_pixels(base64.b64decode(fresh["images"][0]))
        assert (w1, h1, c1) == (w2, h2, c2), f"job {jid}: {w1}x{h1} vs {w2}x{h2}"
        worst = max(abs(x - y) for x, y in zip(a, b))
        assert worst <= 1, f"job {jid}: image differs from a fresh run of seed {body['seed']} by up to {worst}/255"
    first = f"{first_elsewhere:.1f} s" if first_elsewhere is not None else "(not seen between polls)"
    print(f"{len(jobs)} jobs succeeded, {rerun} re-ran after the kill (reclaimed {view['reclaimed']}); "
          f"first re-run seen on a live node {first} after the kill, all done {done_after:.1f} s after; {len(checked)} images checked")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except AssertionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
