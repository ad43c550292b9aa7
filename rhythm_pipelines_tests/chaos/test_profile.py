import yaml

from rhythm_pipelines.chaos.runner import Sandbox, chaos_playbooks, cpu_bar
from rhythm_pipelines.healing.playbooks import parse


def test_the_cpu_bar_sits_over_the_machines_own_background(tmp_path):
    assert cpu_bar([]) == 80.0 and cpu_bar([20.0] * 60) == 80.0  # a quiet machine: the profile's bar
    busy = [70.0] * 50 + [85.0] * 10  # a dagster dev and a generator beside the suite
    assert cpu_bar(busy) == 95.0 and cpu_bar([60.0] * 60) == 80.0 and cpu_bar([75.0] * 60) == 85.0
    sb = Sandbox(tmp_path)
    text = chaos_playbooks(sb, 87.5)
    assert yaml.safe_load(text)["detectors"]["cpu_percent"] == 87.5
    books = parse(text, "chaos")
    assert books.detectors.cpu_percent == 87.5 and books.detectors.leak_horizon_s == 1200
