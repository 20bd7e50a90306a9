"""tasks/progress.py: the one way a byte count is written (commands, prune, save, push,
pull, load and transfer all print sizes through human_size)."""
from tasks.progress import human_size


def test_human_size_as_docker_prints_it():
    assert [human_size(n, between="") for n in (0, 283, 476_000, 1_400_000, 5_600_000, 105_000_000, 22_954_026)] \
        == ["0B", "283B", "476kB", "1.4MB", "5.6MB", "105MB", "23MB"]


def test_sentences_put_a_space_before_the_unit():
    assert [human_size(n) for n in (0, 70_200_000, 1536, 3_500_000_000_000)] == ["0 B", "70.2 MB", "1.54 kB", "3.5 TB"]


def test_a_size_that_rounds_to_a_thousand_goes_up_a_unit():
    """The docker CLI writes 999,999 bytes as 1e+03kB."""
    assert [human_size(n) for n in (999, 999_499, 999_999, 999_999_999)] == ["999 B", "999 kB", "1 MB", "1 GB"]
