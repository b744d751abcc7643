"""What a run tells: a summary table per protocol, JUnit XML and a Markdown report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from conformance.runner import ERROR, FAILED, PASSED, SKIPPED, Result


def _groups(results: Sequence[Result]) -> dict[tuple[str, str], list[Result]]:
    groups: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.protocol, result.version), []).append(result)
    return groups


def counts(results: Sequence[Result]) -> dict[str, int]:
    return {
        "passed": sum(r.outcome == PASSED for r in results),
        "failed": sum(r.outcome in (FAILED, ERROR) for r in results),
        "skipped": sum(r.outcome == SKIPPED for r in results),
        "total": len(results),
    }


def summary_table(results: Sequence[Result]) -> str:
    """protocol | version | passed | failed | skipped | total, and a total row."""
    rows: list[tuple[str, ...]] = [("protocol", "version", "passed", "failed", "skipped", "total")]
    for (protocol, version), group in _groups(results).items():
        c = counts(group)
        rows.append(
            (protocol, version, *(str(c[k]) for k in ("passed", "failed", "skipped", "total")))
        )
    c = counts(results)
    rows.append(("all", "", *(str(c[k]) for k in ("passed", "failed", "skipped", "total"))))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def failures_text(results: Sequence[Result]) -> str:
    """Each failure with its spec sentence and the difference."""
    parts = []
    for result in results:
        if not result.failed:
            continue
        head = f"{result.outcome.upper()} {result.vector_id} [{result.spec}]"
        parts.append(
            "\n".join(
                [
                    head,
                    f'  spec: "{result.sentence}"',
                    f"  {result.summary}",
                    *("  " + line for line in result.details.splitlines()),
                ]
            )
        )
    return "\n\n".join(parts)


def junit_xml(results: Sequence[Result], target: str) -> ET.ElementTree:
    c = counts(results)
    root = ET.Element(
        "testsuites",
        name=f"flexbridge conformance against {target}",
        tests=str(c["total"]),
        failures=str(c["failed"]),
        skipped=str(c["skipped"]),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for (protocol, version), group in _groups(results).items():
        g = counts(group)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{protocol} {version}",
            tests=str(g["total"]),
            failures=str(g["failed"]),
            errors="0",
            skipped=str(g["skipped"]),
            time=f"{sum(r.seconds for r in group):.3f}",
        )
        for result in group:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{protocol}.{version}.{result.file}",
                name=result.vector_id,
                time=f"{result.seconds:.3f}",
            )
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="spec", value=result.spec)
            ET.SubElement(properties, "property", name="sentence", value=result.sentence)
            if result.failed:
                failure = ET.SubElement(
                    case, "failure", message=result.summary, type=result.outcome
                )
                failure.text = result.details or result.summary
            elif result.outcome == SKIPPED:
                ET.SubElement(case, "skipped", message=result.summary)
            if result.steps:
                ET.SubElement(case, "system-out").text = "\n".join(result.steps)
    ET.indent(root)
    return ET.ElementTree(root)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[Result], target: str, protocols: Sequence[str]) -> str:
    c = counts(results)
    verdict = "**FAILED**" if c["failed"] else "passed"
    lines = [
        "# Conformance report",
        "",
        f"- target: `{target}`",
        f"- protocols: {', '.join(protocols)}",
        f"- run at: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- verdict: {verdict} ({c['passed']} passed, {c['failed']} failed, "
        f"{c['skipped']} skipped of {c['total']})",
        "",
        "## Summary",
        "",
        "| protocol | version | passed | failed | skipped | total |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (protocol, version), group in _groups(results).items():
        g = counts(group)
        lines.append(
            f"| {protocol} | {version} | {g['passed']} | {g['failed']} | {g['skipped']} "
            f"| {g['total']} |"
        )
    failed = [r for r in results if r.failed]
    if failed:
        lines += ["", "## Failures", ""]
        for result in failed:
            lines += [
                f"### {result.vector_id}",
                "",
                f"- spec: {result.spec}",
                f"- sentence: “{result.sentence}”",
                f"- {result.summary}",
                "",
                "```diff",
                result.details or result.summary,
                "```",
                "",
            ]
    skipped = [r for r in results if r.outcome == SKIPPED]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{r.vector_id}`: {r.summary}" for r in skipped]
    lines += [
        "",
        "## All vectors",
        "",
        "| vector | spec | result | seconds |",
        "|---|---|---|---:|",
    ]
    for result in results:
        lines.append(
            f"| `{result.vector_id}` | {_cell(result.spec)} | {result.outcome} "
            f"| {result.seconds:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(
    folder: Path, results: Sequence[Result], target: str, protocols: Sequence[str]
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    junit = folder / "conformance-junit.xml"
    junit_xml(results, target).write(junit, encoding="utf-8", xml_declaration=True)
    report = folder / "conformance-report.md"
    report.write_text(markdown(results, target, protocols), encoding="utf-8")
    return junit, report
