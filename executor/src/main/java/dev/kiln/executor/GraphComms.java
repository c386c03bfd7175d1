package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.transport.gpu.Communicator;
import dev.kiln.transport.gpu.DeviceOps;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The NCCL communicators of one compiled graph as one process sees them: for each actor of this process
 * that is a rank of one of the plan's communicators, its rank object of each, and one communication stream
 * on which all of them enqueue (so the actor's NCCL work runs in the plan's order across communicators).
 *
 * <p>Lifecycle, in step with the graph's phases: {@link #join} (phase one, in every process before any waits)
 * starts every local rank's non-blocking join on the rank's actor thread, which has the rank's device current;
 * {@link #awaitReady} (phase two) waits until every rank of every communicator has joined, with a deadline, so a
 * rank whose peers never come fails the compile instead of hanging it. While the graph runs,
 * {@link #asyncError()} is what a watchdog polls. At teardown {@link #finish} (the loops left: pending work
 * completes, then the communicators are destroyed) or {@link #abort()} (a peer died, or the loops are stuck
 * behind work that will never complete), then {@link #close()} destroys the streams.
 *
 * <p>Not thread-safe, except {@link #asyncError()} and {@link #abort()}, which any thread may call.
 */
public final class GraphComms {

    private final ExecutionPlan plan;
    private final List<byte[]> ids;
    /** Per local rank actor: its rank objects by communicator index (null where it is no rank) and its stream. */
    private final Map<Integer, Rank> ranks = new HashMap<>();

    /** One actor's ranks and communication stream. */
    private static final class Rank {
        final ActorThread actor;
        final Communicator[] comms;
        DeviceOps ops;
        int device;
        long stream;

        Rank(ActorThread actor, int communicators) {
            this.actor = actor;
            this.comms = new Communicator[communicators];
        }
    }

    /**
     * @param plan   the plan
     * @param hosted this process's actor threads, by actor id (ranks of other processes are ignored)
     * @param ids    the id of each of the plan's communicators, in order ({@link DeviceOps#newCommunicatorId()} of its
     *               rank 0's process)
     * @throws IllegalArgumentException if the ids do not match the plan's communicators
     */
    public GraphComms(ExecutionPlan plan, Map<Integer, ActorThread> hosted, List<byte[]> ids) {
        if (ids.size() != plan.communicators().size()) {
            throw new IllegalArgumentException("the plan has " + plan.communicators().size() + " communicators, got "
                    + ids.size() + " ids");
        }
        for (byte[] id : ids) {
            if (id == null || id.length != Communicator.ID_BYTES) {
                throw new IllegalArgumentException("a communicator id has " + Communicator.ID_BYTES + " bytes");
            }
        }
        this.plan = plan;
        this.ids = List.copyOf(ids);
        for (CommunicatorSpec c : plan.communicators()) {
            for (int actor : c.ranks()) {
                ActorThread a = hosted.get(actor);
                if (a != null) {
                    ranks.computeIfAbsent(actor, k -> new Rank(a, plan.communicators().size()));
                }
            }
        }
    }

    /** @return whether this process holds any rank */
    public boolean isEmpty() {
        return ranks.isEmpty();
    }

    /**
     * Phase one: on each local rank's actor thread, creates its communication stream and starts joining each of its
     * communicators without blocking. Waits only for those calls to return.
     *
     * @param timeout how long the actor threads may take to run the calls
     * @throws IllegalStateException if an actor cannot (it is dead, it has no GPU, the library refused)
     */
    public void join(Duration timeout) {
        List<CompletableFuture<Void>> started = new ArrayList<>();
        for (Map.Entry<Integer, Rank> e : ranks.entrySet()) {
            int actor = e.getKey();
            Rank r = e.getValue();
            CompletableFuture<Void> done = new CompletableFuture<>();
            started.add(done);
            boolean queued = r.actor.submit(() -> {
                try {
                    ActorGpu gpu = r.actor.gpu();
                    if (gpu == null) {
                        throw new IllegalStateException("actor " + r.actor.name() + " is an NCCL rank but has no GPU");
                    }
                    r.ops = gpu.ops();
                    r.device = gpu.device();
                    r.stream = gpu.ops().createStream(gpu.device());
                    for (CommunicatorSpec c : plan.communicators()) {
                        int rank = c.ranks().indexOf(actor);
                        if (rank >= 0) {
                            r.comms[c.id()] = gpu.ops().joinCommunicator(c.ranks().size(), ids.get(c.id()), rank,
                                    gpu.device(), r.stream);
                        }
                    }
                    done.complete(null);
                } catch (RuntimeException ex) {
                    done.completeExceptionally(ex);
                }
            });
            if (!queued) {
                done.completeExceptionally(new IllegalStateException("actor " + r.actor.name() + " is dead"));
            }
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        for (CompletableFuture<Void> f : started) {
            try {
                f.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (ExecutionException e) {
                abort();
                throw new IllegalStateException("cannot join the graph's NCCL communicators: " + e.getCause().getMessage(),
                        e.getCause());
            } catch (TimeoutException e) {
                abort();
                throw new IllegalStateException("the actors did not start joining the graph's NCCL communicators within "
                        + timeout);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                abort();
                throw new IllegalStateException("interrupted while joining NCCL communicators", e);
            }
        }
    }

    /**
     * Phase two: waits until every rank of every communicator has joined; aborts them all on failure.
     *
     * @param timeout how long joining may take in all
     * @throws IllegalStateException naming the rank that did not join, and why
     */
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (Map.Entry<Integer, Rank> e : ranks.entrySet()) {
            for (Communicator c : e.getValue().comms) {
                if (c != null) {
                    try {
                        c.awaitReady(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
                    } catch (RuntimeException ex) {
                        abort();
                        throw new IllegalStateException("actor " + e.getValue().actor.name() + ": " + ex.getMessage()
                                + " (the timeout is KilnOptions.workerStartTimeout)", ex);
                    }
                }
            }
        }
    }

    /**
     * @param actor        a local rank's actor id
     * @param communicator a communicator index of the plan
     * @return that actor's rank of it, or null
     */
    public Communicator comm(int actor, int communicator) {
        Rank r = ranks.get(actor);
        return r == null ? null : r.comms[communicator];
    }

    /**
     * @param actor a local rank's actor id
     * @return its communication stream
     * @throws IllegalArgumentException if it is no local rank
     */
    public long stream(int actor) {
        Rank r = ranks.get(actor);
        if (r == null) {
            throw new IllegalArgumentException("actor #" + actor + " is no NCCL rank of this process");
        }
        return r.stream;
    }

    /** @return the first error a communicator reports, naming the actor and communicator, or null; any thread */
    public String asyncError() {
        for (Map.Entry<Integer, Rank> e : ranks.entrySet()) {
            Communicator[] comms = e.getValue().comms;
            for (int c = 0; c < comms.length; c++) {
                Communicator comm = comms[c];
                String error = comm == null ? null : comm.asyncError();
                if (error != null) {
                    return "NCCL communicator " + c + " of actor " + e.getValue().actor.name() + " (rank " + comm.rank()
                            + ") reports " + error;
                }
            }
        }
        return null;
    }

    /** Aborts every local rank: their pending work is dropped and the streams behind it go on. Any thread. */
    public void abort() {
        for (Rank r : ranks.values()) {
            for (Communicator c : r.comms) {
                if (c != null) {
                    c.abort();
                }
            }
        }
    }

    /**
     * Ends every local rank in order (pending work first), aborting those that do not finish in time.
     *
     * @param timeout how long all of them may take together
     * @return true if every rank ended in order
     */
    public boolean finish(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean clean = true;
        for (Rank r : ranks.values()) {
            for (Communicator c : r.comms) {
                if (c != null) {
                    clean &= c.finish(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
                }
            }
        }
        return clean;
    }

    /** Aborts ranks not ended yet, then destroys the communication streams. */
    public void close() {
        abort();
        RuntimeException failure = null;
        for (Rank r : ranks.values()) {
            if (r.stream != 0) {
                try {
                    r.ops.destroyStream(r.stream);
                } catch (RuntimeException e) {
                    if (failure == null) {
                        failure = e;
                    } else {
                        failure.addSuppressed(e);
                    }
                }
                r.stream = 0;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
