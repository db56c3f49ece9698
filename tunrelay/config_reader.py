"""Typed values out of YAML nodes, for the config loader: every problem names its line and key path.

The loader (``tunrelay.config``) composes the file into YAML nodes, so each value keeps the
line it came from, and walks them with a ``Reader``. A reader records each problem as
``file:line: key.path: problem`` and carries on, so one run of ``tunrelay check`` reports all
mistakes; a value of the wrong type is named by what was expected and what was given.
"""

import yaml

__all__ = ["Reader", "kind_of", "one_line"]


def one_line(text):
    """``text`` with what would break a one-line problem (a newline in a quoted key or
    value, a control character) escaped as Python would write it."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class Reader:
    """Reads typed values out of YAML nodes, collecting problems instead of stopping."""

    def __init__(self, source):
        self.source = source
        self.problems = []
        self._scalars = yaml.SafeLoader("")
        self._unreadable = set()   # ids of scalar nodes already reported as unreadable

    def problem(self, node, path, message):
        if node is not None and id(node) in self._unreadable:
            return   # "cannot read" said it; "must be a string" would only repeat it
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append((line, "%s:%d: %s: %s" % (self.source, line, one_line(path or "(top)"),
                                                        one_line(message))))

    def value(self, node, path):
        """The Python value of a scalar node (None for a collection or an unreadable scalar)."""
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self._scalars.construct_object(node)
        except Exception as error:
            # A tag names the constructor (!!int abc, !!timestamp 99999-01-01, !!foo), and
            # PyYAML's constructors fail with ConstructorError, ValueError, AttributeError...
            if isinstance(error, yaml.YAMLError):
                reason = getattr(error, "problem", None) or str(error).splitlines()[0]
            else:
                reason = "%r is not a valid !!%s" % (node.value[:40], node.tag.rpartition(":")[2])
            self.problem(node, path, "cannot read this value: %s" % reason)
            self._unreadable.add(id(node))
            return None

    def mapping(self, node, path, known):
        """Return {key: value node} for a mapping node, reporting unknown and repeated keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "must be a mapping")
            return {}
        result = {}
        for key_node, value_node in node.value:
            key = self.value(key_node, path)
            try:
                hash(key)
            except TypeError:   # a tagged scalar can construct to a list or a dict
                self.problem(key_node, path, "a key must be a plain string or number")
                continue
            key_path = "%s.%s" % (path, key) if path else str(key)
            if key not in known:
                self.problem(key_node, key_path, "unknown key (known: %s)" % ", ".join(sorted(known)))
            elif key in result:
                self.problem(key_node, key_path, "given twice")
            else:
                result[key] = value_node
        return result

    def sequence(self, node, path):
        if isinstance(node, yaml.ScalarNode) and self.value(node, path) is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "must be a list")
            return []
        return node.value

    def string(self, node, path):
        value = self.value(node, path)
        if not isinstance(value, str) or not value:
            self.problem(node, path, "must be a non-empty string")
            return None
        return value

    def boolean(self, node, path):
        value = self.value(node, path)
        if not isinstance(value, bool):
            self.problem(node, path, "must be true or false")
            return None
        return value

    def number(self, node, path, low, high, integer=True):
        value = self.value(node, path)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            self.problem(node, path, "must be %s from %s to %s" % ("an integer" if integer else "a number", low, high))
            return None
        return value

    def parsed(self, node, path, parser, expected="a string"):
        """Apply ``parser`` to a string value, turning ValueError into a problem."""
        text = self.value(node, path)
        if not isinstance(text, str):
            # Say what was wanted: a list or a number turned into "" or "5" would be
            # reported as a malformed string, which is not what the user wrote.
            self.problem(node, path, "must be %s, not %s" % (expected, kind_of(node, text)))
            return None
        try:
            return parser(text)
        except ValueError as error:
            self.problem(node, path, str(error))
            return None


def kind_of(node, value):
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    return "a number" if isinstance(value, (int, float)) else "a %s" % type(value).__name__
