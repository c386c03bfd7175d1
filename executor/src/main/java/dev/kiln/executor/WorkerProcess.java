package dev.kiln.executor;

import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The driver's handle on one worker JVM: the child process (same {@code java}, class path and
 * JVM flags as the driver's JVM), its control streams, and the requests waiting for its
 * replies. The worker runs {@link WorkerMain}. When the process ends, for whatever reason,
 * every waiting request fails and the {@link Listener} hears of it at once (the JVM's process
 * reaper reports the exit within milliseconds).
 *
 * <p>Thread-safe: requests may be sent from any thread; replies are received by the control
 * plane's thread.
 */
public final class WorkerProcess {

    /** Told of worker events; called on the control plane's thread or the process reaper's. */
    public interface Listener {
        /**
         * A graph loop in the worker died (an error its actor could not survive).
         *
         * @param worker the worker
         * @param graph  the graph's id
         * @param actor  the actor's id
         * @param cause  what it died of, as text
         */
        void loopDied(WorkerProcess worker, long graph, int actor, String cause);

        /**
         * The worker JVM ended or became unusable.
         *
         * @param worker the worker
         * @param why    why, naming the worker
         */
        void workerDied(WorkerProcess worker, String why);
    }

    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);

    private final String name;
    private final ControlPlane plane;
    private final Listener listener;
    private final int index;
    private final Process process;
    private final Publication toWorker;
    private final Subscription fromWorker;
    private final FragmentAssembler assembler;
    private final Map<Long, CompletableFuture<Message>> pending = new ConcurrentHashMap<>();
    private final AtomicLong correlations = new AtomicLong();
    private final CompletableFuture<Long> ready = new CompletableFuture<>();
    private volatile String death;

    private WorkerProcess(String name, ControlPlane plane, Listener listener, List<String> jvmOptions) {
        this.name = name;
        this.plane = plane;
        this.listener = listener;
        this.index = plane.reserveIndex();
        this.toWorker = plane.aeron().addPublication(ControlPlane.CHANNEL, 100 + 2 * index);
        this.fromWorker = plane.aeron().addSubscription(ControlPlane.CHANNEL, 101 + 2 * index);
        this.assembler = new FragmentAssembler((buffer, offset, length, header) ->
                onMessage(Message.read(buffer, offset, length)));
        plane.add(this);
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp")) {
                command.add(arg); // a second debugger on the same port would stop the worker from starting
            }
        }
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), WorkerMain.class.getName(),
                plane.directory().toString(), Integer.toString(index), name,
                Long.toString(ProcessHandle.current().pid())));
        try {
            this.process = new ProcessBuilder(command).inheritIO().start();
        } catch (IOException e) {
            close();
            throw new IllegalStateException("cannot start worker JVM " + name + ": " + e.getMessage(), e);
        }
        process.onExit().thenRun(() -> died("worker JVM " + name + " (pid " + process.pid() + ") exited with code "
                + process.exitValue()));
    }

    /**
     * Starts a worker JVM and waits until it connected.
     *
     * @param name       the process name, as in {@code ActorOptions.process(name)}
     * @param plane      the control plane
     * @param listener   told of the worker's events
     * @param jvmOptions JVM options added after the driver JVM's own
     * @param timeout    how long the JVM may take to start and connect
     * @return the connected worker
     * @throws IllegalStateException if it does not start in time (it is then killed)
     */
    public static WorkerProcess start(String name, ControlPlane plane, Listener listener, List<String> jvmOptions,
                                      Duration timeout) {
        WorkerProcess w = new WorkerProcess(name, plane, listener, jvmOptions);
        try {
            w.ready.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return w;
        } catch (TimeoutException e) {
            w.kill();
            throw new IllegalStateException("worker JVM " + name + " did not connect within " + timeout
                    + " (KilnOptions.workerStartTimeout); it was killed", e);
        } catch (ExecutionException e) {
            w.kill();
            throw new IllegalStateException("worker JVM " + name + " failed to start: " + e.getCause().getMessage(),
                    e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            w.kill();
            throw new IllegalStateException("interrupted while worker JVM " + name + " was starting", e);
        }
    }

    /** @return the process name */
    public String name() {
        return name;
    }

    /** @return the worker JVM's pid */
    public long pid() {
        return process.pid();
    }

    /** @return why the worker is dead, or null while it lives */
    public String death() {
        return death;
    }

    /**
     * Sends a message that needs no reply.
     *
     * @param message the message
     * @return null when sent, else why not
     */
    public String send(Message message) {
        if (death != null) {
            return death;
        }
        return message.sendTo(toWorker, SEND_TIMEOUT_NS);
    }

    /**
     * Sends a request; its future completes with the worker's {@link Message#REPLY} (positioned
     * at the reply's status), or fails with {@link WorkerDeathException} if the worker dies first.
     *
     * @param type the request type
     * @param body writes the request's body
     * @return the reply's future
     */
    public CompletableFuture<Message> request(int type, java.util.function.Consumer<Message> body) {
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

    /** Receives messages; the control plane's thread only. */
    int poll() {
        return fromWorker.poll(assembler, 16);
    }

    private void onMessage(Message m) {
        switch (m.type()) {
            case Message.READY -> ready.complete(m.getLong());
            case Message.REPLY -> {
                CompletableFuture<Message> reply = pending.remove(m.correlation());
                if (reply != null) {
                    reply.complete(m);
                }
            }
            case Message.LOOP_DIED -> listener.loopDied(this, m.getLong(), m.getInt(), m.getString());
            default -> throw new IllegalArgumentException("unknown control message type " + m.type());
        }
    }

    /** A malformed message from the worker: it can no longer be trusted, so it is stopped. */
    void protocolError(RuntimeException e) {
        died("worker JVM " + name + " sent a malformed control message (" + e.getMessage() + "); it was killed");
        kill();
    }

    private void died(String why) {
        synchronized (this) {
            if (death != null) {
                return;
            }
            death = why;
        }
        ready.completeExceptionally(new WorkerDeathException(why));
        for (Long c : List.copyOf(pending.keySet())) {
            CompletableFuture<Message> reply = pending.remove(c);
            if (reply != null) {
                reply.completeExceptionally(new WorkerDeathException(why));
            }
        }
        listener.workerDied(this, why);
        plane.remove(this);
    }

    /**
     * Asks the worker to stop its actors and exit, waits up to {@code timeout}, then kills it.
     *
     * @param timeout how long the worker may take to exit
     */
    public void shutdown(Duration timeout) {
        if (process != null && process.isAlive()) {
            send(Message.write(Message.SHUTDOWN, 0));
            try {
                if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    kill();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                kill();
            }
        }
        close();
    }

    /** Kills the worker JVM (SIGKILL) and waits briefly for it to be gone. */
    public void kill() {
        if (process != null) {
            process.destroyForcibly();
            try {
                process.waitFor(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        close();
    }

    private void close() {
        plane.remove(this);
        toWorker.close();
        fromWorker.close();
    }

    @Override
    public String toString() {
        return "worker JVM " + name + (process != null ? " (pid " + process.pid() + ")" : "");
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
