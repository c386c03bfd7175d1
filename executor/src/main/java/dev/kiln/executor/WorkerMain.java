package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;
import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The main class of a worker JVM: it connects to the driver's control plane, hosts the actors
 * the driver creates here (each on a thread of its own, as in the driver's JVM), runs their
 * dynamic calls, and takes part in compiled graphs: it opens the graph's channels that its
 * actors touch and runs their loops. It exits when the driver asks, or as soon as the driver's
 * process is gone, so no worker outlives its driver.
 *
 * <p>Arguments: the media driver's directory, the worker's index, its process name and the
 * driver's pid. Started by {@link WorkerProcess}; not meant to be started by hand.
 */
public final class WorkerMain {

    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);
    private static final long STOP_TIMEOUT_MS = 5_000;

    private final String processName;
    private final Publication toDriver;
    private final ValueCodec codec = new ValueCodec();
    private final Map<Integer, ActorThread> actors = new ConcurrentHashMap<>();
    private final Map<Long, GraphPart> graphs = new ConcurrentHashMap<>();
    private final ClassLoader loader = WorkerMain.class.getClassLoader();
    private volatile boolean running = true;

    private WorkerMain(String processName, Publication toDriver) {
        this.processName = processName;
        this.toDriver = toDriver;
    }

    /**
     * Runs the worker until the driver asks it to stop or goes away.
     *
     * @param args media driver directory, worker index, process name, driver pid
     */
    public static void main(String[] args) {
        if (args.length != 4) {
            System.err.println("usage: WorkerMain <aeron dir> <index> <process name> <driver pid>");
            System.exit(2);
        }
        int index = Integer.parseInt(args[1]);
        long driverPid = Long.parseLong(args[3]);
        ProcessHandle driver = ProcessHandle.of(driverPid).orElse(null);
        if (driver == null) {
            System.exit(3);
        }
        // No worker outlives its driver, however the driver ends.
        driver.onExit().thenRun(() -> Runtime.getRuntime().halt(3));
        Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(args[0])
                .errorHandler(e -> {
                    System.err.println("kiln worker " + args[2] + ": control plane error: " + e);
                    Runtime.getRuntime().halt(4);
                }));
        Publication toDriver = aeron.addPublication(ControlPlane.CHANNEL, 101 + 2 * index);
        Subscription fromDriver = aeron.addSubscription(ControlPlane.CHANNEL, 100 + 2 * index);
        WorkerMain worker = new WorkerMain(args[2], toDriver);
        String failure = Message.write(Message.READY, 0).putLong(ProcessHandle.current().pid())
                .sendTo(toDriver, TimeUnit.SECONDS.toNanos(60));
        if (failure != null) {
            System.err.println("kiln worker " + args[2] + ": cannot reach the driver: " + failure);
            Runtime.getRuntime().halt(5);
        }
        FragmentAssembler assembler = new FragmentAssembler((buffer, offset, length, header) ->
                worker.handle(Message.read(buffer, offset, length)));
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        while (worker.running) {
            idle.idle(fromDriver.poll(assembler, 16));
        }
        worker.stopAll();
        aeron.close();
        System.exit(0);
    }

    private void handle(Message m) {
        long c = m.correlation();
        try {
            switch (m.type()) {
                case Message.REGISTER -> {
                    int n = m.getInt();
                    for (int i = 0; i < n; i++) {
                        codec.register(Class.forName(m.getString(), false, loader));
                    }
                    ok(c);
                }
                case Message.CREATE_ACTOR -> createActor(c, m.getInt(), m.getString(), m.getBytes());
                case Message.CALL -> call(c, m);
                case Message.PREPARE -> prepare(c, m);
                case Message.START -> {
                    GraphPart g = graph(m.getLong());
                    g.open();
                    g.attach();
                    ok(c);
                }
                case Message.STOP_GRAPH -> {
                    long id = m.getLong();
                    GraphPart g = graphs.remove(id);
                    // Waiting for the loops to leave may take a while: do not hold up the control stream.
                    Thread.ofPlatform().name("kiln-stop-graph-" + id).daemon(true).start(() -> {
                        if (g != null) {
                            g.stop();
                        }
                        ok(c);
                    });
                }
                case Message.SHUTDOWN -> running = false;
                default -> failed(c, "unknown control message type " + m.type());
            }
        } catch (Exception | LinkageError e) {
            failed(c, e.toString());
        }
    }

    /** Creates an actor; {@code name} is null for a generated one, named like the driver names in-process actors. */
    private void createActor(long c, int id, String givenName, byte[] factoryBytes) {
        Serializable factory = Codecs.lambda(factoryBytes, codec, loader);
        String name = givenName != null ? givenName : "actor-" + id;
        ActorThread a = new ActorThread(id, name, () -> {
            try {
                return ((dev.kiln.ActorFactory<?>) factory).create();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new FactoryException(e);
            }
        });
        a.created().whenComplete((instance, error) -> {
            if (error != null) {
                Throwable cause = error instanceof FactoryException f ? f.getCause() : error;
                a.stop(STOP_TIMEOUT_MS);
                send(reply(c, Message.FAILED).putString(cause.toString())
                        .putString(RemoteError.of(name, "<init>", 0, cause).stackTrace()));
                return;
            }
            if (instance == null) {
                a.stop(STOP_TIMEOUT_MS);
                send(reply(c, Message.FAILED).putString("the factory returned null").putString(""));
                return;
            }
            if (givenName == null) {
                a.rename(ActorThread.defaultName(instance.getClass(), id));
            }
            actors.put(id, a);
            send(reply(c, Message.OK).putString(instance.getClass().getName()).putString(a.name()));
        });
    }

    private void call(long c, Message m) {
        int id = m.getInt();
        long number = m.getLong();
        Serializable method = Codecs.lambda(m.getBytes(), codec, loader);
        int arity = m.getInt();
        Object[] args = (Object[]) Codecs.value(m.getBytes(), codec);
        ActorThread a = actors.get(id);
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
            } else if (error instanceof dev.kiln.ActorTaskException t) {
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
        Path shmDirectory = Path.of(m.getString());
        int n = m.getInt();
        Map<String, Long> pids = new HashMap<>();
        for (int i = 0; i < n; i++) {
            pids.put(m.getString(), m.getLong());
        }
        Object owner = new GraphToken(graphName);
        GraphPart g = new GraphPart(plan, options, processName, graphName, pids, actors, null, codec, shmDirectory, owner,
                (actor, cause) -> send(Message.write(Message.LOOP_DIED, 0).putLong(id).putInt(actor.id())
                        .putString(cause.toString())));
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
            g.create();
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

    private void stopAll() {
        for (GraphPart g : graphs.values()) {
            g.stop();
        }
        graphs.clear();
        for (ActorThread a : actors.values()) {
            a.requestStop();
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(STOP_TIMEOUT_MS);
        for (ActorThread a : actors.values()) {
            a.stop(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
        }
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

    /** Carries a checked factory exception through the {@link Supplier} of {@link ActorThread}. */
    private static final class FactoryException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        FactoryException(Exception cause) {
            super(cause);
        }
    }
}
