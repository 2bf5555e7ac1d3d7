"""The two halves of benches/code_path.sh.

drive PORT COUNT KEY PATH
    COUNT keep-alive GET requests, one after another, on one connection; exits 1 unless every
    answer was a 200.
report COUNT MINIMAL.callgrind GATEWAY.callgrind
    From two callgrind dumps made with --dump-instr=yes over COUNT requests each: instructions
    per request, and the code the requests ran through (an instruction is on the path when it
    ran at least COUNT times, once per request): distinct 64-byte lines (the unit the
    instruction cache holds) and 4 KiB pages, by where the code comes from; instructions of a
    few kinds of work both proxies do (timers, copies, allocation, SHA-256); and the gateway's
    phases and the parts of the policy inside them, inclusive (callgrind_annotate).
"""

import collections
import http.client
import re
import subprocess
import sys

# Where a function's code comes from, by the first pattern its name matches.
ORIGINS = [
    ("gateway", r"imgproxy_gateway"),
    ("pingora", r"pingora"),
    ("tokio", r"tokio"),
    ("http, httparse", r"\bhttp::|httparse"),
    ("mimalloc", r"\bmi_|_mi_|mimalloc"),
    ("url", r"\burl::"),
    ("sha2, hmac", r"sha2|hmac|digest"),
    ("moka, crossbeam", r"moka|crossbeam"),
    ("bytes", r"\bbytes::"),
    ("std", r"\b(core|alloc|std)::"),
]


# Work both proxies do, by the functions that do it (self instructions, summed).
KINDS = [
    ("timers and clock reads", r"tokio::time|tokio::runtime::time|Timespec|clock_gettime|Clock::now"),
    ("memory copies (memcpy)", r"memcpy|memmove"),
    ("allocation (mimalloc)", r"\bmi_|_mi_"),
    ("SHA-256 (valgrind: software)", r"sha2|hmac|digest::"),
]

# The gateway's phases and the parts of the policy inside them, by the function that runs
# each (inclusive instructions per request; indented rows are part of the row above them).
GATEWAY = "<imgproxy_gateway::proxy::Gateway as pingora_proxy::proxy_trait::ProxyHttp>::"
PARTS = [
    ("early_request_filter: timeouts, request id", GATEWAY + "early_request_filter::{{closure}}"),
    ("request_filter", GATEWAY + "request_filter::{{closure}}"),
    ("  admission", "imgproxy_gateway::access::admit::{{closure}}"),
    ("    key fingerprint (SHA-256)", "<D as digest::digest::Digest>::digest"),
    ("    key cache read", "moka::sync::cache::Cache<K,V,S>::get"),
    ("    rate limits and quotas", "imgproxy_gateway::limits::Limits::decide::{{closure}}"),
    ("    limit headers rendered", "imgproxy_gateway::limits::headers::render"),
    ("  convert endpoint", "imgproxy_gateway::proxy::Gateway::endpoint::{{closure}}"),
    ("    source URL parsed", "url::ParseOptions::parse"),
    ("upstream_peer: backend picked", GATEWAY + "upstream_peer::{{closure}}"),
    ("upstream_request_filter: backend request", GATEWAY + "upstream_request_filter::{{closure}}"),
    ("response_filter: answer's header", GATEWAY + "response_filter::{{closure}}"),
    ("logging: log line, metrics, usage", GATEWAY + "logging::{{closure}}"),
    ("  request log line", "imgproxy_gateway::proxy::request_line::RequestLine::log::{{closure}}"),
]


def inclusive(dump):
    """{function: inclusive Ir} of a callgrind dump, by callgrind_annotate."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
        capture_output=True, text=True, check=True,
    ).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+\S*?:(.*?) \[", line)
        if m:
            found.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    return found


def origin(function):
    for name, pattern in ORIGINS:
        if re.search(pattern, function):
            return name
    return "other"


def drive(port, count, key, path):
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
    failed = 0
    for _ in range(int(count)):
        connection.request("GET", path, headers={"X-API-Key": key})
        response = connection.getresponse()
        response.read()
        failed += response.status != 200
    if failed:
        sys.exit(f"{failed} of {count} answers were not 200")


def costs(path):
    """(total Ir, {instruction address: (Ir, function)}) of a callgrind dump."""
    names, function, last, total = {}, None, 0, 0
    per_address = {}
    skip_next = False
    columns = 2
    with open(path) as dump:
        for line in dump:
            if line.startswith("positions:"):
                columns = len(line.split()) - 1
                continue
            if line.startswith("summary:"):
                total = int(line.split()[1])
                continue
            name = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
            if name:
                if name.group(3):
                    names[name.group(2)] = name.group(3).strip()
                if name.group(1) == "fn":
                    function = names[name.group(2)]
                continue
            if line.startswith("calls="):
                skip_next = True  # the next cost line is the call's inclusive cost
                continue
            if not line or line[0] not in "0123456789+-*":
                continue
            fields = line.split()
            at = fields[0]
            if at.startswith("0x"):
                address = int(at, 16)
            elif at[0] in "+-":
                address = last + int(at)
            elif at == "*":
                address = last
            else:
                address = int(at)
            last = address
            if skip_next:
                skip_next = False
                continue
            if len(fields) > columns:
                ir, _ = per_address.get(address, (0, function))
                per_address[address] = (ir + int(fields[columns]), function)
    return total, per_address


def path_of(per_address, count):
    """{origin: (lines, pages)}, {function: lines} of the instructions run once per request."""
    lines, pages = {}, set()
    for address, (ir, function) in per_address.items():
        if ir >= count:
            lines.setdefault(address >> 6, function)
            pages.add(address >> 12)
    by_origin = collections.Counter(origin(f) for f in lines.values())
    by_function = collections.Counter(lines.values())
    return len(lines), len(pages), by_origin, by_function


def report(count, minimal_dump, gateway_dump):
    count = int(count)
    results = {}
    kinds = {}
    for who, dump in (("minimal", minimal_dump), ("gateway", gateway_dump)):
        total, per_address = costs(dump)
        results[who] = (total / count,) + path_of(per_address, count)
        kinds[who] = [
            sum(ir for ir, f in per_address.values() if f and re.search(pattern, f)) / count
            for _, pattern in KINDS
        ]
    print(f"{'':<28}{'minimal':>12}{'gateway':>12}{'difference':>12}")
    rows = [("instructions per request", 0), ("lines of code (64 B)", 1), ("pages of code (4 KiB)", 2)]
    for label, i in rows:
        m, g = results["minimal"][i], results["gateway"][i]
        print(f"{label:<28}{m:>12,.0f}{g:>12,.0f}{g - m:>+12,.0f}")
    print("lines of code by origin:")
    m_origin, g_origin = results["minimal"][3], results["gateway"][3]
    for name in sorted(set(m_origin) | set(g_origin), key=lambda n: m_origin[n] - g_origin[n]):
        print(f"  {name:<26}{m_origin[name]:>12,}{g_origin[name]:>12,}{g_origin[name] - m_origin[name]:>+12,}")
    print("instructions per request of work both do:")
    for i, (label, _) in enumerate(KINDS):
        m, g = kinds["minimal"][i], kinds["gateway"][i]
        print(f"  {label:<26}{m:>12,.0f}{g:>12,.0f}{g - m:>+12,.0f}")
    print("the gateway's phases, instructions per request (inclusive; 'inlined': the compiler merged it into the phase that calls it, which counts it):")
    found = inclusive(gateway_dump)
    for label, function in PARTS:
        cost = f"{found[function] / count:,.0f}" if function in found else "inlined"
        print(f"  {label:<48}{cost:>12}")
    print("the gateway's own functions with the most lines on the path:")
    own = [(n, f) for f, n in results["gateway"][4].items() if origin(f) == "gateway"]
    for n, function in sorted(own, reverse=True)[:15]:
        print(f"  {n:>5}  {function[:110]}")


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"drive": drive, "report": report}[command](*arguments)
