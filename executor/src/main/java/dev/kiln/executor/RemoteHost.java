package dev.kiln.executor;

import dev.kiln.ActorCreationException;
import dev.kiln.ActorDiedException;
import dev.kiln.ActorFactory;
import dev.kiln.ActorHost;
import dev.kiln.ActorOptions;
import dev.kiln.ControlStats;
import dev.kiln.RemoteActorException;
import dev.kiln.graph.KilnException;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongFunction;

/**
 * The driver's side of a worker, whichever way it came: a child JVM the runtime started ({@link WorkerProcess})
 * or a worker that joined from elsewhere ({@link JoinedWorker}). Both joined through the same handshake, run
 * {@link WorkerRuntime} behind {@link WorkerNode}, and speak the same authenticated control protocol
 * ({@link Message} over a {@link ControlLink}): requests go out with a correlation id, answers come back with
 * it. When the worker dies, for whatever reason, every waiting request fails and the {@link Listener} hears of
 * it once.
 *
 * <p>Thread-safe: requests may be sent from any thread; messages are received by the control plane's thread.
 */
public abstract sealed class RemoteHost implements ActorHost permits WorkerProcess, JoinedWorker {

    /** Told of worker events; called on the control plane's thread or the thread that saw the worker die. */
    public interface Listener {
        /**
         * A graph loop in the worker died (an error its actor could not survive).
         *
         * @param worker the worker
         * @param graph  the graph's id
         * @param actor  the actor's id
         * @param cause  what it died of, as text
         */
        void loopDied(RemoteHost worker, long graph, int actor, String cause);

        /**
         * A graph lost a peer in another JVM (its channel says which, and why); the actors live on.
         *
         * @param worker the worker that saw it
         * @param graph  the graph's id
         * @param why    what was lost
         */
        void graphFailed(RemoteHost worker, long graph, String why);

        /**
         * The worker ended or became unusable.
         *
         * @param worker the worker
         * @param why    why, naming the worker
         */
        void workerDied(RemoteHost worker, String why);
    }

    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);

    private final String name;
    private final Listener listener;
    private final ValueCodec codec;
    private final Duration timeout;
    private final Map<Long, CompletableFuture<Message.Answer>> pending = new ConcurrentHashMap<>();
    private final Set<Integer> actors = ConcurrentHashMap.newKeySet();
    private final AtomicLong correlations = new AtomicLong();
    private volatile ControlLink link;
    private volatile ControlPlane plane;
    private volatile ControlStats peerStats = ControlStats.NONE;
    private volatile String death;

    /**
     * @param name     the worker's name, unique within the runtime
     * @param listener told of the worker's events
     * @param codec    the runtime's codec (actor factories and dynamic calls are encoded with it)
     * @param timeout  how long creating an actor may take
     */
    RemoteHost(String name, Listener listener, ValueCodec codec, Duration timeout) {
        this.name = name;
        this.listener = listener;
        this.codec = codec;
        this.timeout = timeout;
    }

    /**
     * Connects the handle to its worker once the join succeeded.
     *
     * @param controlLink  the authenticated control stream to it
     * @param controlPlane the control plane that receives its messages
     */
    final void attach(ControlLink controlLink, ControlPlane controlPlane) {
        this.link = controlLink;
        this.plane = controlPlane;
    }

    /** @return the authenticated control stream to the worker, or null before it joined */
    final ControlLink link() {
        return link;
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final String death() {
        return death;
    }

    @Override
    public final int actorCount() {
        return actors.size();
    }

    /** @return the drops the worker counted on its side, as its last heartbeat said */
    public final ControlStats peerStats() {
        return peerStats;
    }

    /** @return the worker JVM's pid (shared-memory files are named after their writer's pid) */
    public abstract long pid();

    /** @return the host name that compiled plans use for this worker */
    public String hostName() {
        return resources().hostName();
    }

    /**
     * @return the {@code host:port} where the worker's media driver receives Aeron UDP (data channels
     *         from other hosts), or null when it receives none
     */
    public abstract String endpoint();

    /** @return the shared-memory directory of the worker's host, as the worker sees it */
    public abstract String shmDirectory();

    /**
     * Asks the worker to stop its actors and leave; waits up to {@code timeout} for it to go, then
     * ends it as well as this host can (a child JVM is killed).
     *
     * @param timeout how long the worker may take
     */
    public abstract void shutdown(Duration timeout);

    /** Ends the worker at once, as well as this host can (a child JVM is killed with SIGKILL). */
    public abstract void kill();

    /**
     * Sends a message that needs no answer.
     *
     * @param message the message
     * @return null when sent, else why not
     */
    public final String send(Message.Authenticated message) {
        String d = death;
        if (d != null) {
            return d;
        }
        ControlLink l = link;
        return l == null ? "worker " + name + " has not joined" : l.send(message, SEND_TIMEOUT_NS);
    }

    /**
     * Sends a request; its future completes with the worker's answer, or fails with {@link WorkerDeathException}
     * if the worker dies first, or {@link IllegalStateException} if the request cannot be sent.
     *
     * @param request makes the request from its correlation id
     * @return the answer's future
     */
    public final CompletableFuture<Message.Answer> request(LongFunction<Message.Request> request) {
        long correlation = correlations.incrementAndGet();
        CompletableFuture<Message.Answer> reply = new CompletableFuture<>();
        pending.put(correlation, reply);
        String failure = send(request.apply(correlation));
        if (failure != null) {
            pending.remove(correlation);
            reply.completeExceptionally(death != null ? new WorkerDeathException(death)
                    : new IllegalStateException("cannot reach worker " + name + ": " + failure));
        } else if (death != null && pending.remove(correlation) != null) {
            reply.completeExceptionally(new WorkerDeathException(death)); // died while we sent: nobody else fails it
        }
        return reply;
    }

    @Override
    public final Started startActor(int id, String actorName, int gpu, ActorFactory<?> factory) {
        String label = actorName != null ? actorName : "#" + id;
        byte[] factoryBytes;
        try {
            factoryBytes = Codecs.lambdaBytes(factory, codec);
        } catch (IllegalArgumentException e) {
            throw new ActorCreationException("the factory of actor " + label + " cannot be sent to worker " + name
                    + ": " + e.getMessage(), e);
        }
        Message.Answer answer;
        try {
            answer = await(request(c -> new Message.CreateActor(c, id, gpu, actorName, factoryBytes)),
                    "create actor " + label);
        } catch (ActorDiedException | IllegalStateException e) {
            throw new ActorCreationException(e.getMessage(), e);
        }
        if (!(answer instanceof Message.ActorStarted started)) {
            Message.Reply r = answer instanceof Message.Reply x ? x : new Message.Reply(0, Message.Status.FAILED,
                    "an unexpected answer " + answer, "", new byte[0]);
            throw new ActorCreationException("the factory of actor " + label + " in worker " + name + " threw "
                    + r.message(), new RemoteActorException(new RemoteError(label, "<init>", 0, r.message(), null,
                    r.stackTrace())));
        }
        String uuid = started.deviceUuid();
        long free = started.deviceFreeBytes();
        if (gpu != ActorOptions.NO_GPU && (uuid.isEmpty() || free < 0)) {
            throw new ActorCreationException("worker " + name + " started actor " + label + " on GPU " + gpu
                    + " but reported no device for it");
        }
        actors.add(id);
        return gpu == ActorOptions.NO_GPU ? new Started(started.actorName(), started.className())
                : new Started(started.actorName(), started.className(), uuid, free);
    }

    @Override
    public final void stopActor(int id) {
        if (actors.remove(id)) {
            send(new Message.StopActor(id));
        }
    }

    private Message.Answer await(CompletableFuture<Message.Answer> reply, String what) {
        try {
            return reply.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new ActorDiedException("worker " + name + " could not " + what + ": " + e.getCause().getMessage(),
                    e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("worker " + name + " did not " + what + " within " + timeout
                    + " (KilnOptions.workerStartTimeout)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for worker " + name, e);
        }
    }

    /**
     * Handles one authenticated message from the worker; the control plane's thread only.
     *
     * @param m the message
     * @throws IllegalArgumentException if a worker does not send such a message
     */
    final void onMessage(Message m) {
        switch (m) {
            case Message.Answer a -> {
                CompletableFuture<Message.Answer> reply = pending.remove(a.correlation());
                if (reply != null) {
                    reply.complete(a);
                }
            }
            case Message.Heartbeat h -> peerStats = new ControlStats(h.forged(), h.replayed(), h.malformed());
            case Message.LoopDied d -> listener.loopDied(this, d.graphId(), d.actorId(), d.cause());
            case Message.GraphFailed f -> listener.graphFailed(this, f.graphId(), f.why());
            case Message.Left l -> died("worker " + name + " left: " + l.reason());
            default -> throw new IllegalArgumentException("a worker does not send " + m.getClass().getSimpleName());
        }
    }

    /**
     * The worker's control stream ended: it left, or its process ended.
     *
     * @param why what happened
     */
    final void left(String why) {
        died("worker " + name + " left (" + why + ")");
    }

    /**
     * The liveness rule declared the worker lost: nothing came from it for the worker timeout.
     *
     * @param why what happened, naming the worker and the timeout
     */
    final void lost(String why) {
        died(why);
    }

    /**
     * An authenticated message the worker should not have sent: it can no longer be trusted, so it is stopped.
     *
     * @param e what was wrong
     */
    final void protocolError(RuntimeException e) {
        died("worker " + name + " sent an unexpected control message (" + LogText.quote(e.getMessage())
                + "); it was dropped");
        kill();
    }

    /**
     * Marks the worker dead (the first reason is kept), fails its waiting requests and tells the listener.
     *
     * @param why why, naming the worker
     * @return whether this call marked it dead
     */
    final boolean died(String why) {
        synchronized (this) {
            if (death != null) {
                return false;
            }
            death = why;
        }
        onDeath(why);
        ControlPlane p = plane;
        if (p != null) {
            p.remove(this);
        }
        for (Long c : List.copyOf(pending.keySet())) {
            CompletableFuture<Message.Answer> reply = pending.remove(c);
            if (reply != null) {
                reply.completeExceptionally(new WorkerDeathException(why));
            }
        }
        listener.workerDied(this, why);
        return true;
    }

    /**
     * Called once, first thing, when the worker is marked dead.
     *
     * @param why why it died
     */
    void onDeath(String why) {
    }

    /** A request failed because its worker died. */
    public static final class WorkerDeathException extends KilnException {
        private static final long serialVersionUID = 1L;

        /** @param why why the worker died */
        WorkerDeathException(String why) {
            super(why);
        }
    }
}
