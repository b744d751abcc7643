"""What a benchmark ran on, printed with its figures."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    system = f"{platform.system()} {platform.release()}"
    return (
        f"machine: {_cpu_model()}, {os.cpu_count()} cores, {system}; "
        f"Python {sys.version.split()[0]}; SQLite {sqlite3.sqlite_version}"
    )
