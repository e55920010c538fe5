"""The ceiling: a minimal Tornado server that parses a JSON POST body and answers.

Whatever one Python event loop can do on this machine, replog cannot beat;
every replog figure is reported as a ratio to this one, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import tornado.web


class Handler(tornado.web.RequestHandler):
    def post(self) -> None:
        doc = orjson.loads(self.request.body)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"ok": True, "id": doc.get("id")}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = tornado.web.Application([(r"/", Handler)], log_function=lambda h: None)
    app.listen(args.port, args.host)
    await asyncio.Event().wait()


if __name__ == "__main__":
    # The same event loop as the nodes (uvloop when installed), for a fair ceiling.
    from replog.common import loop

    loop.run(main())
