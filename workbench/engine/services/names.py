"""Docker-style random container names (adjective_surname) and name validation."""

from __future__ import annotations

import random
import re

from workbench.errors import InvalidArgument

_LEFT = ("admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave busy "
         "charming clever cool compassionate competent confident crazy dazzling determined distracted "
         "dreamy eager ecstatic elastic elated elegant eloquent epic fervent festive flamboyant focused "
         "friendly frosty gallant gifted goofy gracious happy hardcore heuristic hopeful hungry infallible "
         "inspiring jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty "
         "nervous nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky "
         "quizzical relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied "
         "suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly "
         "wonderful xenodochial youthful zealous zen").split()
_RIGHT = ("albattani allen almeida archimedes ardinghelli babbage banach bardeen bartik bassi bell benz "
          "bhabha blackwell bohr booth borg bose boyd brahmagupta brattain brown carson chandrasekhar curie "
          "darwin davinci dijkstra dubinsky easley einstein elion engelbart euclid euler fermat fermi "
          "feynman franklin galileo gauss goldberg goodall hamilton hawking heisenberg hodgkin hopper "
          "hypatia jackson jennings johnson kalam kepler khorana knuth lamarr leakey lovelace lumiere "
          "mayer mccarthy mclean meitner mendel morse napier newton nobel noether payne perlman pike "
          "poincare ptolemy raman ritchie rosalind sammet shannon shockley sinoussi snyder spence "
          "stallman swanson swartz tesla thompson torvalds turing varahamihira visvesvaraya wescoff "
          "wiles williams wilson wing wozniak wright yalow yonath").split()
_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def random_name() -> str:
    return f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"


def validate_name(name: str) -> str:
    """Return the name without its leading slash; 400 when Docker would refuse it."""
    if not _VALID.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
