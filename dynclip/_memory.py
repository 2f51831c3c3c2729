"""How much memory a computation may still take: checked before allocating, so an absurd size
fails at once with the arguments that drive it, not after hours or with NumPy's bare message."""
import os


def available():
    """Bytes this process can still allocate (Linux MemAvailable, within a cgroup limit if one is set;
    elsewhere the physical memory); None if unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, OSError, ValueError):
            return None
        if avail <= 0:
            return None
    try:                                          # a container's limit (cgroup v2)
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                avail = min(avail, max(0, int(limit) - int(f.read().strip())))
    except (OSError, ValueError):
        pass
    return avail


def size(n):
    """``n`` bytes, readable (``"7.28 TiB"``)."""
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if x < 1024 or unit == "PiB":
            return f"{x:.3g} {unit}"
        x /= 1024


def check(what, parts, error=ValueError):
    """Raise ``error`` if the ``parts`` (list of ``(bytes, description)``) need more than is available;
    the message lists the largest parts, each naming the arguments that drive it."""
    need = sum(b for b, _ in parts)
    avail = available()
    if avail is None or need <= avail:
        return
    big = sorted((p for p in parts if p[0] >= 0.1 * need), key=lambda p: -p[0])
    raise error(f"{what} would need about {size(need)} of memory, but {size(avail)} are available: "
                     + "; ".join(f"{d} = {size(b)}" for b, d in big))
