package dev.kiln;

import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Function;

/**
 * A compiled graph as one stage of a {@link Flow} pipeline: each element from upstream is one execution
 * ({@link CompiledGraph#executeAsync(Object)}), each result goes downstream in input order. Made by
 * {@link CompiledGraph#asProcessor()}; the contract users read is on that method.
 *
 * <p>Back-pressure: the processor keeps a window of at most {@code window} elements that were requested from
 * upstream and not yet emitted (in the graph, finished and waiting for an earlier one, or not yet arrived), and
 * requests from upstream only up to {@code min(downstream demand, emitted + window)}. So at most {@code window}
 * executions are open, and the processor buffers at most {@code window} results.
 *
 * <p>Threads: every signal to the downstream subscriber and every {@code request} and {@code cancel} to the
 * upstream subscription is made inside {@link #drain()}, which one thread at a time runs (a work-in-progress
 * counter: a thread that finds it taken leaves the work to the one in it, which loops once more). It runs on the
 * thread of the event that called it: upstream's {@code onNext} (an execution that failed at once), downstream's
 * {@code request}, or the graph's thread that completed an execution's future. No thread of its own.
 *
 * @param <I> the graph's input type
 * @param <O> the graph's result type
 */
final class GraphProcessor<I, O> implements Flow.Processor<I, O> {

    private final CompiledGraph<I, O> graph;
    /** Maps a per-element failure to the value emitted instead; null: such a failure fails the stream. */
    private final Function<? super RuntimeException, ? extends O> failureValue;
    private final int window;
    /** Element {@code n}'s execution at {@code n % window}, from upstream's onNext until drain emits it. */
    private final AtomicReferenceArray<CompletableFuture<O>> executions;
    private final AtomicInteger wip = new AtomicInteger();
    /** Downstream's demand, summed, capped at Long.MAX_VALUE (rule 3.17). */
    private final AtomicLong demand = new AtomicLong();

    private volatile Flow.Subscription upstream;
    private volatile Flow.Subscriber<? super O> downstream;
    private volatile boolean subscribed;
    /** Elements received from upstream; written by upstream's onNext only. */
    private volatile long received;
    /** Elements requested from upstream in all; written in drain, read by onNext to catch an upstream overflow. */
    private volatile long requested;
    private volatile boolean upstreamDone;
    private volatile Throwable upstreamError;
    /** Set by downstream's cancel, a bad request, or an upstream that broke the rules; drain acts on it. */
    private volatile boolean cancelled;
    private volatile Throwable protocolError;

    // Drain's own state (the work-in-progress counter orders its runs).
    private long emitted;
    private boolean terminated;
    private boolean upstreamCancelled;

    GraphProcessor(CompiledGraph<I, O> graph, Function<? super RuntimeException, ? extends O> failureValue) {
        this.graph = graph;
        this.failureValue = failureValue;
        this.window = graph.options().maxInflight();
        this.executions = new AtomicReferenceArray<>(window);
    }

    // ---- upstream side (Flow.Subscriber): called by the upstream publisher, one signal at a time (rule 1.3)

    @Override
    public void onSubscribe(Flow.Subscription subscription) {
        Objects.requireNonNull(subscription, "subscription (Reactive Streams rule 2.13)");
        if (upstream != null) {
            subscription.cancel(); // rule 2.5: one upstream
            return;
        }
        upstream = subscription;
        drain();
    }

    @Override
    public void onNext(I item) {
        Objects.requireNonNull(item, "item (Reactive Streams rule 2.13)");
        long n = received;
        if (upstreamDone || cancelled) {
            return; // after cancel, signals may still arrive (rule 2.8)
        }
        if (n >= requested) {
            protocolError = new IllegalStateException(graph + ": the upstream publisher sent element #" + n
                    + " but only " + requested + " were requested (Reactive Streams rule 1.1); it is cancelled");
            cancelled = true;
            drain();
            return;
        }
        CompletableFuture<O> execution;
        try {
            execution = graph.executeAsync(item);
        } catch (RuntimeException e) {
            execution = CompletableFuture.failedFuture(e); // not started: emitted in its turn as a failure
        }
        executions.set((int) (n % window), execution);
        received = n + 1;
        execution.whenComplete((result, error) -> drain());
    }

    @Override
    public void onError(Throwable error) {
        Objects.requireNonNull(error, "error (Reactive Streams rule 2.13)");
        upstreamError = error;
        upstreamDone = true;
        drain();
    }

    @Override
    public void onComplete() {
        upstreamDone = true;
        drain();
    }

    // ---- downstream side (Flow.Publisher)

    @Override
    public void subscribe(Flow.Subscriber<? super O> subscriber) {
        Objects.requireNonNull(subscriber, "subscriber (Reactive Streams rule 1.9)");
        synchronized (this) {
            if (subscribed) {
                subscriber.onSubscribe(new Refused());
                subscriber.onError(new IllegalStateException(graph + ": this processor has a subscriber already; "
                        + "call CompiledGraph.asProcessor() once per stream"));
                return;
            }
            subscribed = true;
        }
        subscriber.onSubscribe(new Downstream());
        downstream = subscriber; // after onSubscribe returned: no other signal may overtake it (rule 1.9)
        drain();
    }

    /** The subscription handed to a second subscriber, which is refused at once. */
    private static final class Refused implements Flow.Subscription {
        @Override
        public void request(long n) {
        }

        @Override
        public void cancel() {
        }
    }

    /** The downstream's subscription. Any thread (rule 2.7 is the subscriber's side); never recurses (rule 3.3). */
    private final class Downstream implements Flow.Subscription {
        @Override
        public void request(long n) {
            if (n <= 0) {
                protocolError = new IllegalArgumentException(graph + ": request(" + n
                        + ") by the downstream subscriber; demand must be positive (Reactive Streams rule 3.9)");
                cancelled = true;
            } else {
                demand.getAndUpdate(d -> d + n < 0 ? Long.MAX_VALUE : d + n);
            }
            drain();
        }

        @Override
        public void cancel() {
            cancelled = true;
            drain();
        }
    }

    // ---- the one place that signals

    private void drain() {
        if (wip.getAndIncrement() != 0) {
            return;
        }
        int missed = 1;
        while (true) {
            try {
                step();
            } catch (RuntimeException | Error e) {
                // The downstream subscriber threw (rule 2.13 forbids it): the stream cannot go on, and there is
                // nobody left to tell.
                terminate(null, null, false);
                throw e;
            }
            missed = wip.addAndGet(-missed);
            if (missed == 0) {
                return;
            }
        }
    }

    private void step() {
        if (terminated) {
            cancelUpstream(); // an upstream that subscribed after the end
            return;
        }
        Flow.Subscriber<? super O> down = downstream;
        if (cancelled) {
            Throwable bad = protocolError;
            terminate(down, bad, bad != null || down == null);
            return;
        }
        if (down == null) {
            return; // nothing to emit to yet; upstream is not asked for anything either
        }
        long e = emitted;
        long wanted = demand.get();
        while (e < wanted && !cancelled) {
            CompletableFuture<O> next = executions.get((int) (e % window));
            if (next == null || !next.isDone()) {
                break;
            }
            executions.set((int) (e % window), null);
            O value;
            if (next.state() == Future.State.SUCCESS) {
                value = next.resultNow();
            } else {
                RuntimeException failure = unwrap(next.exceptionNow());
                if (failureValue == null || !perElement(failure)) {
                    terminate(down, failure, true);
                    return;
                }
                try {
                    value = failureValue.apply(failure);
                } catch (RuntimeException mappingFailed) {
                    if (mappingFailed != failure) {
                        mappingFailed.addSuppressed(failure);
                    }
                    terminate(down, mappingFailed, true);
                    return;
                }
                if (value == null) {
                    terminate(down, new NullPointerException(graph + ": the failure mapping of asProcessor returned "
                            + "null for " + failure + "; return a value (Reactive Streams rule 2.13 forbids null)"), true);
                    return;
                }
            }
            e++;
            emitted = e;
            down.onNext(value);
        }
        if (cancelled) {
            return; // the next loop terminates
        }
        if (upstreamDone && e == received) {
            Throwable error = upstreamError;
            terminated = true;
            downstream = null; // rule 3.13
            if (error == null) {
                down.onComplete();
            } else {
                down.onError(error);
            }
            return;
        }
        Flow.Subscription up = upstream;
        if (up != null && !upstreamDone) {
            long target = Math.min(wanted, e + window);
            long more = target - requested;
            if (more > 0) {
                requested = target; // before request: onNext may arrive on this very call
                up.request(more);
            }
        }
    }

    /**
     * Ends the stream: cancels upstream, drops what is in flight (the executions go on in the graph and their results
     * are not read) and tells downstream {@code error}, if any and if {@code signal}.
     */
    private void terminate(Flow.Subscriber<? super O> down, Throwable error, boolean signal) {
        if (signal && down == null) {
            return; // keep the error until a subscriber arrives
        }
        terminated = true;
        cancelled = true; // upstream's signals still on their way are ignored (rule 2.8)
        downstream = null; // a cancelled or failed subscriber is not kept (rule 3.13)
        cancelUpstream();
        for (int i = 0; i < window; i++) {
            executions.set(i, null);
        }
        if (signal && error != null) {
            down.onError(error);
        }
    }

    private void cancelUpstream() {
        Flow.Subscription up = upstream;
        if (up != null && !upstreamDone && !upstreamCancelled) {
            upstreamCancelled = true;
            up.cancel();
        }
    }

    /** Failures of one element, after which the graph runs on: an actor method threw, or a restart lost it. */
    private static boolean perElement(RuntimeException failure) {
        return failure instanceof ActorTaskException || failure instanceof GraphRestartedException;
    }

    private static RuntimeException unwrap(Throwable t) {
        Throwable cause = t instanceof java.util.concurrent.CompletionException && t.getCause() != null
                ? t.getCause() : t;
        return cause instanceof RuntimeException r ? r : new IllegalStateException(cause);
    }
}
