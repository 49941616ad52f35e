"""The Faust adapter: the only place the worker touches Faust, mode or aiokafka internals.

Everything here reaches past Faust's public API, and every internal it relies on is a hook listed in
`compat` and checked at start (one line naming the hook and the installed versions when a release has
moved it). `hooks.install` puts them on an app; `fastpath` (eager dispatch, prompt resume, the fetch
wait) and `batches` (batches straight off an agent's channel) are the fast path, which
``AVROFLOW_FAUST_FAST_PATH=false`` turns off; `producer` makes Faust's producer idempotent; `acks` takes
a batch's acking away from Faust until its results are durable; `worker` is the process's Faust Worker;
and `credentials` turns the Kafka security settings into Faust's and aiokafka's. The rest of the worker
uses Faust's public API only (``faust.App``, topics, agents, timers, pages, the producer's ``send``, the
codec registry through `registry_codecs.check_serializers`).
"""
