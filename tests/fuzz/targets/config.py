"""The configuration loader (tunrelay/config.py ``parse``), YAML included.

Contract (README, "A configuration error stops start-up with one line per problem naming
the file, the line and the key path"): ``parse`` returns a ``RelayConfig`` or raises
``ConfigError`` whose every problem is one line ``fuzz.yaml:LINE: key.path: problem``.
Anything else escaping is a finding, and so is a problem that is not one such line.

The input is the file's text (UTF-8, undecodable bytes replaced as a text editor would
not save them). ``responder.services`` may name ``module:attribute``, which imports a
module: the harness makes modules that are not loaded yet look absent to it, so fuzzing
runs no stray module code.
"""

import re
import sys

from tunrelay.responder import services
from tunrelay.config import ConfigError, RelayConfig, parse

REJECTIONS = (ConfigError,)
COVERS = ["tunrelay/config.py", "tunrelay/config_reader.py", "tunrelay/endpoints.py", "tunrelay/responder/services.py"]
MAX_LEN = 640

_PROBLEM = re.compile(r"fuzz\.yaml:\d+: [^\n]+\Z")


class _NoNewImportsForServices:
    """A meta path finder first in line: a module a service spec names does not exist
    unless it is loaded already. Other imports (lazy ones in libraries) go on as usual."""

    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code is _IMPORT_FACTORY:
                raise ModuleNotFoundError("fuzzing: no new imports (%s)" % name, name=name)
            frame = frame.f_back
        return None


_IMPORT_FACTORY = services._import_factory.__code__
sys.meta_path.insert(0, _NoNewImportsForServices())


def fuzz_one(data):
    text = data.decode("utf-8", "replace")
    try:
        config = parse(text, source="fuzz.yaml")
    except ConfigError as error:
        assert error.problems, "a ConfigError without problems"
        for problem in error.problems:
            assert _PROBLEM.match(problem), "not one line naming file and line: %r" % (problem,)
        raise
    assert isinstance(config, RelayConfig)
