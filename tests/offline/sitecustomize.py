"""Turns the course's network guard on in every Python process the test run starts.

The test suite puts this folder on PYTHONPATH and sets COURSE_OFFLINE=1; Python imports
``sitecustomize`` at start-up, so notebook kernels and helper processes are offline too.
"""

import os

if os.environ.get("COURSE_OFFLINE") == "1":
    from course_utils.offline import block_network

    block_network()
