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

import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * What a worker does for its driver, whichever way it joined (a child JVM or a {@link dev.kiln.KilnWorker}):
 * it hosts the actors the driver creates here, each on a thread of its own ({@link ThreadHost}), runs their
 * dynamic calls, and takes part in compiled graphs, opening the graph's channels its actors touch and running
 * their loops. {@link WorkerNode} receives the driver's authenticated requests and hands each to
 * {@link #handle}; answers go back on the control link given at construction.
 *
 * <p>{@link #handle} runs on the node's receiving thread; answers may be sent from actor threads.
 */
public final class WorkerRuntime {

    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);
    private static final long STOP_TIMEOUT_MS = 5_000;

    private final String processName;
    private final ControlLink toDriver;
    private final Aeron aeron;
    private final long maxCallBytes;
    private final ValueCodec codec = new ValueCodec();
    private final ThreadHost actors;
    private final Gpus gpus;
    private final Map<Long, GraphPart> graphs = new ConcurrentHashMap<>();
    private final ClassLoader loader = WorkerRuntime.class.getClassLoader();

    /**
     * @param processName  the worker's name in plans
     * @param resources    what this JVM offers; asked when first needed
     * @param gpus         the GPUs of this JVM's actors (the caller closes them after {@link #stopAll})
     * @param toDriver     the authenticated control link to the driver
     * @param aeron        the client of this host's media driver, for Aeron UDP channels
     * @param maxCallBytes the largest dynamic-call result this worker sends (the driver's limit)
     */
    public WorkerRuntime(String processName, Supplier<WorkerInfo> resources, Gpus gpus, ControlLink toDriver,
                         Aeron aeron, long maxCallBytes) {
        this.processName = processName;
        this.toDriver = toDriver;
        this.aeron = aeron;
        this.maxCallBytes = maxCallBytes;
        this.gpus = gpus;
        this.actors = new ThreadHost(processName, resources, gpus, STOP_TIMEOUT_MS);
    }

    /**
     * Registers value classes, so that their values may cross to and from this JVM. Only the driver's
     * authenticated ACCEPT names them.
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
     * Handles one authenticated request of the driver; answers it.
     *
     * @param m the message
     */
    public void handle(Message m) {
        long c = m instanceof Message.Request r ? r.correlation() : 0;
        try {
            switch (m) {
                case Message.CreateActor x -> createActor(c, x.actorId(), x.name(), x.gpu(), x.factory());
                case Message.StopActor x -> actors.stopActor(x.actorId());
                case Message.Call x -> call(x);
                case Message.Prepare x -> prepare(x);
                case Message.Start x -> {
                    GraphPart g = graph(x.graphId());
                    // Opening waits for the graph's NCCL ranks to join: do not hold up the control stream.
                    Thread.ofPlatform().name("kiln-start-graph-" + x.graphId()).daemon(true).start(() -> {
                        try {
                            g.open();
                            g.attach();
                            ok(c);
                        } catch (RuntimeException e) {
                            failed(c, e.getMessage() != null ? e.getMessage() : e.toString());
                        }
                    });
                }
                case Message.StopGraph x -> {
                    GraphPart g = graphs.remove(x.graphId());
                    // Waiting for the loops to leave may take a while: do not hold up the control stream.
                    Thread.ofPlatform().name("kiln-stop-graph-" + x.graphId()).daemon(true).start(() -> {
                        if (g != null) {
                            g.stop(x.abort());
                        }
                        ok(c);
                    });
                }
                case Message.CommunicatorId x -> send(new Message.Reply(c, Message.Status.OK, "", "",
                        gpus.ops().newCommunicatorId()));
                default -> failed(c, "a worker does not handle " + m.getClass().getSimpleName());
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
                send(new Message.ActorStarted(c, started.className(), started.name(),
                        started.deviceUuid() != null ? started.deviceUuid() : "", started.deviceFreeBytes()));
                return;
            }
            Throwable cause = error instanceof ActorCreationException a && a.getCause() != null ? a.getCause() : null;
            String name = givenName != null ? givenName : "actor-" + id;
            send(new Message.Reply(c, Message.Status.FAILED, cause != null ? cause.toString() : error.getMessage(),
                    cause != null ? RemoteError.of(name, "<init>", 0, cause).stackTrace() : "", new byte[0]));
        });
    }

    private void call(Message.Call m) {
        long c = m.correlation();
        int id = m.actorId();
        long number = m.number();
        Serializable method = Codecs.lambda(m.method(), codec, loader);
        Object[] args = (Object[]) Codecs.value(m.arguments(), codec);
        ActorThread a = actors.thread(id);
        if (a == null) {
            send(new Message.Reply(c, Message.Status.DIED, "actor #" + id + " is not in worker " + processName, "",
                    new byte[0]));
            return;
        }
        DynamicCall<Object> call = new DynamicCall<>(method, m.arity(), a.created().getNow(null), a.name(), number,
                args);
        call.future().whenComplete((value, error) -> {
            if (error == null) {
                byte[] bytes;
                try {
                    bytes = Codecs.valueBytes(value, codec);
                } catch (RuntimeException e) {
                    failed(c, "cannot send the result of call #" + number + " back to the driver: "
                            + GraphLoop.explain(e));
                    return;
                }
                if (bytes.length > maxCallBytes) {
                    failed(c, "the result of call #" + number + " to actor " + a.name() + " takes " + bytes.length
                            + " bytes, more than the " + maxCallBytes + " a dynamic call may carry"
                            + " (KilnOptions.maxCallBytes): raise it, or return large values through a compiled graph");
                    return;
                }
                send(new Message.Reply(c, Message.Status.OK, "", "", bytes));
            } else if (error instanceof ActorTaskException t) {
                RemoteError e = t.getCause() == null ? RemoteError.of(a.name(), t.method(), number, t)
                        : RemoteError.of(a.name(), t.method(), number, t.getCause());
                send(new Message.TaskFailed(c, e.method(), e.exceptionClass(), e.message() == null ? "" : e.message(),
                        e.stackTrace()));
            } else {
                send(new Message.Reply(c, Message.Status.DIED, String.valueOf(error.getMessage()), "", new byte[0]));
            }
        });
        if (!a.submit(call)) {
            call.abandon(a.name(), a.death());
        }
    }

    private void prepare(Message.Prepare m) {
        long c = m.correlation();
        long id = m.graphId();
        String graphName = m.graphName();
        ExecutionPlan plan = Codecs.plan(m.plan(), codec, loader);
        CompileOptions options = Codecs.options(m.options());
        UdpSettings udp = m.udp();
        Map<String, Peer> peers = new java.util.HashMap<>();
        m.peers().forEach(p -> peers.put(p.process(), p));
        List<byte[]> commIds = m.communicatorIds();
        Duration joinTimeout = Duration.ofNanos(m.ncclJoinTimeoutNs());
        Object owner = new GraphToken(graphName);
        GraphPart g = new GraphPart(plan, options, processName, graphName, peers, actors.threads(), null, gpus,
                joinTimeout, codec, aeron, udp, owner,
                (actor, cause) -> send(new Message.LoopDied(id, actor.id(), cause.toString())),
                why -> send(new Message.GraphFailed(id, why)), null); // statistics and traces cover the driver's JVM
        List<ActorThread> held = new ArrayList<>();
        try {
            for (int i = 0; i < g.actors().size(); i++) {
                ActorThread a = g.actors().get(i);
                if (a.death() != null || !a.isAlive()) {
                    throw new IllegalStateException("actor " + a.name() + " is dead (" + a.death() + ")");
                }
                Object holder = a.hold(owner, Holders.exclusive(g.schedules().get(i), options));
                if (holder != null) {
                    throw new IllegalStateException("actor " + a.name() + " is in " + holder + ", still open, which "
                            + "cannot share it with this graph");
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

    private void ok(long correlation) {
        send(new Message.Reply(correlation, Message.Status.OK, "", "", new byte[0]));
    }

    private void failed(long correlation, String why) {
        send(new Message.Reply(correlation, Message.Status.FAILED, why, "", new byte[0]));
    }

    /**
     * Sends a message to the driver. An answer that cannot go (too large for a control message, say) is replaced by a
     * short failure for the same request, so that the driver's future fails instead of waiting forever; if even that
     * cannot go, the link is broken and the driver's liveness rule ends the worker's requests.
     */
    private void send(Message.Authenticated m) {
        String failure = toDriver.send(m, SEND_TIMEOUT_NS);
        if (failure == null) {
            return;
        }
        System.err.println("kiln worker " + processName + ": cannot send a " + m.getClass().getSimpleName()
                + " to the driver: " + failure);
        if (m instanceof Message.Answer a && !(m instanceof Message.Reply r && r.value().length == 0
                && r.message().startsWith(UNSENT))) {
            String why = UNSENT + failure;
            toDriver.send(new Message.Reply(a.correlation(), Message.Status.FAILED,
                    why.length() > 1_000 ? why.substring(0, 1_000) : why, "", new byte[0]), SEND_TIMEOUT_NS);
        }
    }

    private static final String UNSENT = "the worker could not send its answer: ";
}
