package dev.kiln.executor;

import dev.kiln.ActorCreationException;
import dev.kiln.ActorFactory;
import dev.kiln.ActorTaskException;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;
import io.aeron.Aeron;
import io.aeron.Publication;

import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * What a worker JVM does for its driver, whichever way it came (a child JVM, {@link WorkerMain},
 * or a joined worker, {@link dev.kiln.KilnWorker}): it hosts the actors the driver creates here,
 * each on a thread of its own ({@link ThreadHost}), runs their dynamic calls, and takes part in
 * compiled graphs, opening the graph's channels its actors touch and running their loops. The
 * caller receives the driver's control messages and hands each to {@link #handle}; replies go
 * back on the control stream given at construction.
 *
 * <p>{@link #handle} runs on the caller's receiving thread; replies may be sent from actor threads.
 */
public final class WorkerRuntime {

    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);
    private static final long STOP_TIMEOUT_MS = 5_000;

    private final String processName;
    private final Publication toDriver;
    private final Aeron aeron;
    private final ValueCodec codec = new ValueCodec();
    private final ThreadHost actors;
    private final Gpus gpus;
    private final Map<Long, GraphPart> graphs = new ConcurrentHashMap<>();
    private final ClassLoader loader = WorkerRuntime.class.getClassLoader();
    private volatile boolean running = true;

    /**
     * @param processName the worker's name in plans
     * @param resources   what this JVM offers; asked when first needed
     * @param gpus        the GPUs of this JVM's actors (the caller closes them after {@link #stopAll})
     * @param toDriver    the control stream to the driver
     * @param aeron       the client of this host's media driver, for Aeron UDP channels
     */
    public WorkerRuntime(String processName, Supplier<WorkerInfo> resources, Gpus gpus, Publication toDriver,
                         Aeron aeron) {
        this.processName = processName;
        this.toDriver = toDriver;
        this.aeron = aeron;
        this.gpus = gpus;
        this.actors = new ThreadHost(processName, resources, gpus, STOP_TIMEOUT_MS);
    }

    /** @return false once the driver asked the worker to shut down */
    public boolean running() {
        return running;
    }

    /**
     * Registers value classes, so that their values may cross to and from this JVM.
     *
     * @param classNames binary class names
     * @throws ClassNotFoundException if one cannot be loaded here
     */
    public void register(List<String> classNames) throws ClassNotFoundException {
        for (String name : classNames) {
            codec.register(Class.forName(name, false, loader));
        }
    }

    /**
     * Handles one message from the driver; replies to requests.
     *
     * @param m the message, positioned at its body
     */
    public void handle(Message m) {
        long c = m.correlation();
        try {
            switch (m.type()) {
                case Message.REGISTER -> {
                    int n = m.getInt();
                    List<String> names = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        names.add(m.getString());
                    }
                    register(names);
                    ok(c);
                }
                case Message.CREATE_ACTOR -> createActor(c, m.getInt(), m.getString(), m.getInt(), m.getBytes());
                case Message.STOP_ACTOR -> actors.stopActor(m.getInt());
                case Message.CALL -> call(c, m);
                case Message.PREPARE -> prepare(c, m);
                case Message.START -> {
                    long id = m.getLong();
                    GraphPart g = graph(id);
                    // Opening waits for the graph's NCCL ranks to join: do not hold up the control stream.
                    Thread.ofPlatform().name("kiln-start-graph-" + id).daemon(true).start(() -> {
                        try {
                            g.open();
                            g.attach();
                            ok(c);
                        } catch (RuntimeException e) {
                            failed(c, e.getMessage() != null ? e.getMessage() : e.toString());
                        }
                    });
                }
                case Message.STOP_GRAPH -> {
                    long id = m.getLong();
                    boolean abort = m.getInt() != 0;
                    GraphPart g = graphs.remove(id);
                    // Waiting for the loops to leave may take a while: do not hold up the control stream.
                    Thread.ofPlatform().name("kiln-stop-graph-" + id).daemon(true).start(() -> {
                        if (g != null) {
                            g.stop(abort);
                        }
                        ok(c);
                    });
                }
                case Message.COMMUNICATOR_ID -> send(reply(c, Message.OK).putBytes(gpus.ops().newCommunicatorId()));
                case Message.SHUTDOWN -> running = false;
                default -> failed(c, "unknown control message type " + m.type());
            }
        } catch (Exception | LinkageError e) {
            failed(c, e.toString());
        }
    }

    /** Creates an actor; {@code name} is null for a generated one, named like the driver names in-process actors. */
    private void createActor(long c, int id, String givenName, int gpu, byte[] factoryBytes) {
        Serializable factory = Codecs.lambda(factoryBytes, codec, loader);
        actors.startAsync(id, givenName, gpu, (ActorFactory<?>) factory).whenComplete((started, error) -> {
            if (error == null) {
                send(reply(c, Message.OK).putString(started.className()).putString(started.name())
                        .putString(started.deviceUuid() != null ? started.deviceUuid() : "")
                        .putLong(started.deviceFreeBytes()));
                return;
            }
            Throwable cause = error instanceof ActorCreationException a && a.getCause() != null ? a.getCause() : null;
            String name = givenName != null ? givenName : "actor-" + id;
            send(reply(c, Message.FAILED).putString(cause != null ? cause.toString() : error.getMessage())
                    .putString(cause != null ? RemoteError.of(name, "<init>", 0, cause).stackTrace() : ""));
        });
    }

    private void call(long c, Message m) {
        int id = m.getInt();
        long number = m.getLong();
        Serializable method = Codecs.lambda(m.getBytes(), codec, loader);
        int arity = m.getInt();
        Object[] args = (Object[]) Codecs.value(m.getBytes(), codec);
        ActorThread a = actors.thread(id);
        if (a == null) {
            send(reply(c, Message.DIED).putString("actor #" + id + " is not in worker JVM " + processName));
            return;
        }
        DynamicCall<Object> call = new DynamicCall<>(method, arity, a.created().getNow(null), a.name(), number, args);
        call.future().whenComplete((value, error) -> {
            if (error == null) {
                Message r = reply(c, Message.OK);
                try {
                    r.putBytes(Codecs.valueBytes(value, codec));
                } catch (RuntimeException e) {
                    send(reply(c, Message.FAILED).putString("cannot send the result of the call back to the driver: "
                            + GraphLoop.explain(e)));
                    return;
                }
                send(r);
            } else if (error instanceof ActorTaskException t) {
                RemoteError e = t.getCause() == null ? RemoteError.of(a.name(), t.method(), number, t)
                        : RemoteError.of(a.name(), t.method(), number, t.getCause());
                send(reply(c, Message.TASK_ERROR).putString(e.method()).putString(e.exceptionClass())
                        .putString(e.message()).putString(e.stackTrace()));
            } else {
                send(reply(c, Message.DIED).putString(error.getMessage()));
            }
        });
        if (!a.submit(call)) {
            call.abandon(a.name(), a.death());
        }
    }

    private void prepare(long c, Message m) {
        long id = m.getLong();
        String graphName = m.getString();
        ExecutionPlan plan = Codecs.plan(m.getBytes(), codec, loader);
        CompileOptions options = Codecs.options(m.getBytes());
        UdpSettings udp = Codecs.udp(m);
        Map<String, Peer> peers = Codecs.peers(m);
        List<byte[]> commIds = Codecs.communicatorIds(m);
        Duration joinTimeout = Duration.ofNanos(m.getLong());
        Object owner = new GraphToken(graphName);
        GraphPart g = new GraphPart(plan, options, processName, graphName, peers, actors.threads(), null, gpus,
                joinTimeout, codec, aeron, udp, owner,
                (actor, cause) -> send(Message.write(Message.LOOP_DIED, 0).putLong(id).putInt(actor.id())
                        .putString(cause.toString())),
                why -> send(Message.write(Message.GRAPH_FAILED, 0).putLong(id).putString(why)));
        List<ActorThread> held = new ArrayList<>();
        try {
            for (ActorThread a : g.actors()) {
                if (a.death() != null || !a.isAlive()) {
                    throw new IllegalStateException("actor " + a.name() + " is dead (" + a.death() + ")");
                }
                Object holder = a.hold(owner);
                if (holder != null) {
                    throw new IllegalStateException("actor " + a.name() + " is in " + holder + ", still open");
                }
                held.add(a);
            }
            g.create(commIds);
        } catch (RuntimeException e) {
            held.forEach(a -> a.release(owner));
            throw e;
        }
        graphs.put(id, g);
        ok(c);
    }

    /** The holder of a worker's actors while a graph uses them; named after the graph for messages. */
    private record GraphToken(String name) {
        @Override
        public String toString() {
            return name;
        }
    }

    private GraphPart graph(long id) {
        GraphPart g = graphs.get(id);
        if (g == null) {
            throw new IllegalStateException("graph #" + id + " is not prepared in worker JVM " + processName);
        }
        return g;
    }

    /** Stops every graph's loops and closes their channels, then ends every actor. */
    public void stopAll() {
        for (GraphPart g : graphs.values()) {
            g.stop(true);
        }
        graphs.clear();
        actors.close(STOP_TIMEOUT_MS);
    }

    private Message reply(long correlation, int status) {
        return Message.write(Message.REPLY, correlation).putInt(status);
    }

    private void ok(long correlation) {
        send(reply(correlation, Message.OK));
    }

    private void failed(long correlation, String why) {
        send(reply(correlation, Message.FAILED).putString(why).putString(""));
    }

    private void send(Message m) {
        String failure = m.sendTo(toDriver, SEND_TIMEOUT_NS);
        if (failure != null) {
            System.err.println("kiln worker " + processName + ": cannot reach the driver: " + failure);
        }
    }
}
