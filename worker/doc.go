// Package worker turns lookup requests on the requests stream into result
// events: it pulls from the shared durable consumer schemas.WorkerConsumer,
// calls the vendor (a [Looker], normally *eiot.Client) under a rate limit,
// and publishes exactly one schemas.Result per request.
//
// # Consumption
//
// Every worker process pulls with Fetch sized to its free slots
// (Config.Concurrency), so no request waits in a client buffer while its ack
// timer runs. While a request waits (rate limiter, backoff, a slow vendor)
// the worker signals InProgress every third of the consumer's actual AckWait
// (read from the consumer, which another process may have provisioned). The
// loop is supervised: fetch errors, server restarts, reconnects, missed
// heartbeats and a deleted consumer (recreated unless Config.NoProvision)
// are recovered from with backoff, without a restart.
//
// # Requests
//
// A body is a bare ICCID or a JSON schemas.Request ([ParseRequest]). What
// cannot be used becomes an invalid result (error.kind invalid_input,
// error.code one of the Reason constants) without a vendor call. A request's
// identity is its request_id, else its Nats-Msg-Id header, else
// "<stream>:<stream creation, unix ns>:<sequence>".
//
// # Outcomes
//
// The vendor's answers map to outcomes as SPEC.md's "Vendor outcomes" table
// says: ok; failed (no_data, a vendor code, a permanent HTTP status);
// retried with exponential backoff and jitter within Config.RetryBudget,
// never sooner than a Retry-After, then handed back with NakWithDelay while
// the request is younger than Config.GiveUpAfter, then failed with kind
// exhausted; the replay code is retried at once, freshly signed. Systemic
// refusals (credentials, signature, clock, 401/403/404, an error page) pause
// the worker: it stops pulling, keeps one request as a probe (re-reading
// Config.SecretFile before each probe and on ReloadSecret, logging "secret
// reloaded" when it changed), holds a couple more in progress and hands the
// rest back with a delay no longer than Config.ProbeInitial (so other
// processes, or this one once resumed, get them promptly), and resumes by
// itself when the vendor accepts again; the held requests go on at once. A run
// of Config.BreakerFailures 5xx/timeouts opens a breaker: one request at a
// time until the vendor answers again.
//
// # Provisioning
//
// Unless Config.NoProvision, the worker creates what is missing and verifies
// what exists (schemas.ProvisionWith without UpdateExisting): a conflict ends
// Run, but the limits of existing streams (MaxBytes, MaxAge, ...) are never
// changed — that is `simlookup streams`'s job — and a difference is logged
// at INFO. Failures are retried with exponential backoff up to a minute; a
// server that cannot reserve the streams' storage is logged at ERROR with
// the hint on every attempt and shown by Ready.
//
// # Results and acks
//
// A result is published to schemas.ResultSubject with Nats-Msg-Id
// schemas.ResultMsgID(request_id) and acked (DoubleAck) only after the
// PubAck, so a crash between the two yields one stored result. A duplicate
// PubAck on a first delivery means a reused request_id: it is counted and
// logged. A result that cannot be stored for now (the stream full, NATS
// away, a timeout) is retried with backoff while the request is held in
// progress and pulling stops; nothing is acked, nothing lost. A result the
// stream refuses for good (the message is too large for it) goes to the
// dead-letter stream with the request's payload, and the request is acked.
// A request at the consumer's MaxDeliver, and one the server's
// MAX_DELIVERIES advisory reports, are dead-lettered too. Nothing else is.
//
// # Shutdown
//
// When Run's context ends the worker stops pulling, hands back at once the
// requests that are only waiting, lets vendor calls in flight finish and
// publish within Config.ShutdownTimeout, Naks the rest for immediate
// redelivery, and returns nil.
package worker
