"""A page in the browser to try the served models: streamed generation with its sampling
controls, Stop and Continue, and the sentiment classifier with its LSTM gates per token.

    make playground            # starts it against the running server and prints its URL

One static page (playground/static/, no build step, nothing fetched from outside) served with
the standard library by a small process on 127.0.0.1 (playground/proxy.py). That process reads
the server's key file and forwards the page's requests with the key, so the key never reaches
the page; docs/playground.md says why this design, SECURITY.md what it guards against.
"""
