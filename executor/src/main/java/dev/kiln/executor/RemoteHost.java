package dev.kiln.executor;

import dev.kiln.ActorCreationException;
import dev.kiln.ActorDiedException;
import dev.kiln.ActorFactory;
import dev.kiln.ActorHost;
import dev.kiln.ActorOptions;
import dev.kiln.RemoteActorException;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;
import io.aeron.Publication;

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
import java.util.function.Consumer;

/**
 * The driver's side of a worker JVM, whichever way it came: a child JVM the runtime started
 * ({@link WorkerProcess}) or a worker that joined over Aeron UDP ({@link JoinedWorker}). Both
 * run {@link WorkerRuntime} and speak the same control protocol ({@link Message}): requests go
 * out on the worker's control stream, replies come back with the request's correlation id.
 * When the worker dies, for whatever reason, every waiting request fails and the
 * {@link Listener} hears of it once.
 *
 * <p>Thread-safe: requests may be sent from any thread; messages are received by the control
 * plane's thread.
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
         * The worker JVM ended or became unusable.
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
    private final Map<Long, CompletableFuture<Message>> pending = new ConcurrentHashMap<>();
    private final Set<Integer> actors = ConcurrentHashMap.newKeySet();
    private final AtomicLong correlations = new AtomicLong();
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

    /** @return the control stream to the worker */
    abstract Publication toWorker();

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
     * Sends a message that needs no reply.
     *
     * @param message the message
     * @return null when sent, else why not
     */
    public final String send(Message message) {
        String d = death;
        if (d != null) {
            return d;
        }
        return message.sendTo(toWorker(), SEND_TIMEOUT_NS);
    }

    /**
     * Sends a request; its future completes with the worker's {@link Message#REPLY} (positioned
     * at the reply's status), or fails with {@link WorkerDeathException} if the worker dies first.
     *
     * @param type the request type
     * @param body writes the request's body
     * @return the reply's future
     */
    public final CompletableFuture<Message> request(int type, Consumer<Message> body) {
        long correlation = correlations.incrementAndGet();
        CompletableFuture<Message> reply = new CompletableFuture<>();
        pending.put(correlation, reply);
        Message m = Message.write(type, correlation);
        body.accept(m);
        String failure = send(m);
        if (failure != null) {
            pending.remove(correlation);
            reply.completeExceptionally(death != null ? new WorkerDeathException(death)
                    : new IllegalStateException("cannot reach worker JVM " + name + ": " + failure));
        } else if (death != null && pending.remove(correlation) != null) {
            reply.completeExceptionally(new WorkerDeathException(death)); // died while we sent: nobody else fails it
        }
        return reply;
    }

    /**
     * Registers value classes in the worker's codec, so that their values may cross to it.
     *
     * @param types the classes
     * @throws IllegalStateException if the worker cannot load or register one
     */
    public final void register(List<Class<?>> types) {
        if (types.isEmpty()) {
            return;
        }
        Message reply = await(request(Message.REGISTER, m -> {
            m.putInt(types.size());
            types.forEach(t -> m.putString(t.getName()));
        }), "register classes");
        if (reply.getInt() != Message.OK) {
            throw new IllegalStateException("worker JVM " + name + " cannot register " + types + ": " + reply.getString());
        }
    }

    @Override
    public final Started startActor(int id, String actorName, int gpu, ActorFactory<?> factory) {
        String label = actorName != null ? actorName : "#" + id;
        byte[] factoryBytes;
        try {
            factoryBytes = Codecs.lambdaBytes(factory, codec);
        } catch (IllegalArgumentException e) {
            throw new ActorCreationException("the factory of actor " + label + " cannot be sent to worker JVM " + name
                    + ": " + e.getMessage(), e);
        }
        Message reply;
        try {
            reply = await(request(Message.CREATE_ACTOR, m -> m.putInt(id).putString(actorName).putInt(gpu)
                    .putBytes(factoryBytes)),
                    "create actor " + label);
        } catch (ActorDiedException | IllegalStateException e) {
            throw new ActorCreationException(e.getMessage(), e);
        }
        if (reply.getInt() != Message.OK) {
            String error = reply.getString();
            throw new ActorCreationException("the factory of actor " + label + " in worker JVM " + name + " threw "
                    + error, new RemoteActorException(new RemoteError(label, "<init>", 0, error, null,
                    String.valueOf(reply.getString()))));
        }
        String className = reply.getString();
        String finalName = reply.getString();
        String uuid = reply.getString();
        long free = reply.getLong();
        if (gpu != ActorOptions.NO_GPU && (uuid == null || uuid.isEmpty() || free < 0)) {
            throw new ActorCreationException("worker JVM " + name + " started actor " + label + " on GPU " + gpu
                    + " but reported no device for it");
        }
        actors.add(id);
        return gpu == ActorOptions.NO_GPU ? new Started(finalName, className) : new Started(finalName, className, uuid, free);
    }

    @Override
    public final void stopActor(int id) {
        if (actors.remove(id)) {
            send(Message.write(Message.STOP_ACTOR, 0).putInt(id));
        }
    }

    private Message await(CompletableFuture<Message> reply, String what) {
        try {
            return reply.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new ActorDiedException("worker JVM " + name + " could not " + what + ": " + e.getCause().getMessage(),
                    e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("worker JVM " + name + " did not " + what + " within " + timeout
                    + " (KilnOptions.workerStartTimeout)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for worker JVM " + name, e);
        }
    }

    /**
     * Handles one message from the worker; the control plane's thread only.
     *
     * @param m the message, positioned at its body
     * @throws IllegalArgumentException if the type is unknown or the body malformed
     */
    void onMessage(Message m) {
        switch (m.type()) {
            case Message.REPLY -> {
                CompletableFuture<Message> reply = pending.remove(m.correlation());
                if (reply != null) {
                    reply.complete(m);
                }
            }
            case Message.LOOP_DIED -> listener.loopDied(this, m.getLong(), m.getInt(), m.getString());
            case Message.GRAPH_FAILED -> listener.graphFailed(this, m.getLong(), m.getString());
            default -> onOtherMessage(m);
        }
    }

    /**
     * A message type only this kind of worker sends.
     *
     * @param m the message, positioned at its body
     * @throws IllegalArgumentException if this kind of worker does not send it
     */
    void onOtherMessage(Message m) {
        throw new IllegalArgumentException("unknown control message type " + m.type());
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
        for (Long c : List.copyOf(pending.keySet())) {
            CompletableFuture<Message> reply = pending.remove(c);
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

    /** A request failed because its worker JVM died. */
    public static final class WorkerDeathException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        /** @param why why the worker died */
        WorkerDeathException(String why) {
            super(why);
        }
    }
}
