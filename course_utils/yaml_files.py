"""YAML files of the course (quiz banks, the course map), read so that a key written twice is an error.

PyYAML keeps the last value of a key written twice in one mapping without a word. In a quiz bank that
silently changes which option is correct (``correct:`` twice, two ``text:`` in one option); in the course
map, a lesson's time. ``load_unique_yaml`` reads safely (``yaml.SafeLoader``) and refuses such keys.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping holds the same key twice (``key``, 1-based ``line`` and ``first_line``)."""

    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(f"line {line}: duplicate key {key!r} (first on line {first_line})")

    def explained(self, where: str) -> str:
        """The message for a reader of the file ``where``: the line, the key, and what to do."""
        return (
            f"{where}, line {self.line}: key {self.key!r} appears twice in the same mapping (first on line "
            f"{self.first_line}); YAML would silently keep only the last one. Keep exactly one."
        )


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises ``DuplicateKeyError`` on a key written twice in one mapping.

    PyYAML keeps the last value of a duplicated key without a word, so ``correct:`` written twice
    (or two ``text:`` in one option) would silently change the key of a question. Merge keys
    (``<<: *anchor``) may still be overridden, as YAML allows.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first_line:
                        raise DuplicateKeyError(key, line, first_line[key])
                    first_line[key] = line
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
        return super().construct_mapping(node, deep=deep)


def load_unique_yaml(text: str) -> Any:
    """Parse YAML text like ``yaml.safe_load``; a key written twice in one mapping raises ``DuplicateKeyError``."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
