"""`gankit serve RUN [RUN ...]`: a local web page per run to see, steer and compare what G makes, and to watch a run
while it trains. Needs the `serve` extra (pip install 'gankit[serve]'): Starlette and uvicorn.

    app.py     the pages and the JSON API (every request through gankit.sample, gankit.explore,
               the tasks' uses in gankit/tasks/)
    runs.py    the served folders, their files checked to lie inside them, their models loaded once
    images.py  PNGs out, uploads in through the training's image reader
    futures.py a predict run's futures: held-out sequences or an uploaded .npz, GIFs out (gankit.tasks.predict.futures)
    server.py  uvicorn on a socket bound to 127.0.0.1 unless told otherwise
    static/    the pages: plain HTML, JavaScript and CSS, no build step
"""

from gankit.serve.app import make_app  # noqa: F401
from gankit.serve.runs import open_runs  # noqa: F401
from gankit.serve.server import serve, server  # noqa: F401
