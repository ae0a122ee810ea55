// Package sink writes the results stream into Parquet files that load
// straight into a data warehouse: exactly one row per result event, whatever
// crashes.
//
// # Files
//
// A [Sink] reads the results stream (schemas.ResultStream) in stream order
// with an ordered consumer and writes
//
//	<out>/dt=YYYY-MM-DD/hour=HH/part-<epoch>-<first>-<last>.parquet
//
// where dt/hour is the UTC time the stream stored the results, <epoch> is the
// stream's creation time in Unix nanoseconds (so a recreated stream, whose
// sequences restart at 1, never collides with old files) and <first>/<last>
// are the 20-digit zero-padded stream sequences the file holds. A file never
// spans a partition. The row type is [Row]; its columns are listed in
// schemas/parquet-columns.md. Writer settings are those of [NewWriter].
//
// A batch is closed on Config.MaxRows, Config.MaxBytes, Config.MaxAge, a
// partition change or shutdown. Rows are encoded into the file as they
// arrive, so memory is bounded by one row group (Config.RowGroupRows) and the
// consumer's buffer (Config.PullMessages), not by the batch size.
//
// # Exactly once
//
// One sink writes a folder: Run takes an exclusive flock on
// <out>/.simlookup-sink.lock for its lifetime; a second sink fails at once
// with [ErrLocked] (or waits, Config.LockWait). The lock dies with the
// process, so a kill -9 never leaves the folder locked.
//
// A commit is: encode the batch into <out>/.simlookup-tmp/part-…parquet.tmp
// (a name no **/*.parquet glob matches), write the footer, fsync the file,
// rename it to its final name (the commit point: rename is atomic), fsync
// the partition folder, and only then replace the checkpoint
// <out>/.simlookup-sink.checkpoint (written to a temporary name, fsynced,
// renamed, folder fsynced) with {stream, epoch, committed_seq, last_file}.
// Batches are committed strictly one after another, in stream order, so
// every final file of an epoch holds the sequences right after the previous
// one's (apart from results that expired before they were read).
//
// At start-up the sink removes everything in .simlookup-tmp, then works out
// the committed sequence C without opening any Parquet file: C is the
// checkpoint's committed_seq (0 if the checkpoint is missing or of another
// epoch); then, while the stream still holds message C+1, it looks for
// part-<epoch>-<C+1>-*.parquet in that message's partition folder (the
// partition is a function of the message's stored time, which the stream
// keeps) and, if a file is there, fsyncs its folder and moves C to the file's
// last sequence. Only if message C+1 has left the stream does it list the
// partition folders' names. It then consumes from C+1.
//
// Why this is right after a crash at any instant:
//   - before the rename: no final file exists for the batch; the temporary
//     file is removed at start-up and the checkpoint still says C, so the
//     batch's results are read again from the stream and rewritten;
//   - after the rename, before the folder fsync: after a power loss the
//     rename may be gone (same as above) or present (next case);
//   - after the rename, before or during the checkpoint write: the checkpoint
//     still says C (its replacement is atomic) but the probe finds the file
//     starting at C+1 and C moves past it, so its rows are not written again;
//   - after the checkpoint: C is the file's last sequence.
//
// In no case does a result end up in two final files, or in none (unless it
// expired from the stream first), and a final name never holds a partial
// file. A write error (disk full, permission, I/O) at any step discards the
// batch (nothing is committed), counts in simlookup_sink_write_errors_total,
// makes [Sink.Ready] fail, and is retried with exponential backoff by
// reading the same results again; a retried batch gets the same name if it
// ends at the same sequence, and otherwise no overlapping file exists.
//
// # Loss and lag
//
// Results expire from the stream (its MaxAge, 7 days by default). If the
// stream's first sequence is past C+1, or a sequence is skipped, the sink
// logs exactly which sequences it missed and counts them in
// simlookup_sink_missed_sequences_total. simlookup_sink_lag_messages and
// simlookup_sink_lag_seconds (the age of the oldest uncommitted result) are
// the metrics to alert on, long before the stream's MaxAge.
//
// If the stream is deleted and created again, the sink notices (a new
// creation time), commits the open batch if it holds only results of the old
// stream, and starts the new epoch from its first sequence.
package sink
