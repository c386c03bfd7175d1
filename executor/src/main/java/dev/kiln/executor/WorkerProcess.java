package dev.kiln.executor;

import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.SimulatedGpus;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * The driver's handle on a child worker JVM it started on its own host: the child process (same
 * {@code java}, class path and JVM flags as the driver's JVM), its control streams over
 * {@code aeron:ipc} on the driver's media driver, and the requests waiting for its replies. The
 * worker runs {@link WorkerMain}. When the process ends, for whatever reason, every waiting
 * request fails and the {@link RemoteHost.Listener} hears of it at once (the JVM's process reaper
 * reports the exit within milliseconds).
 *
 * <p>Thread-safe: requests may be sent from any thread; replies are received by the control
 * plane's thread.
 */
public final class WorkerProcess extends RemoteHost {

    private final ControlPlane plane;
    private final String hostName;
    private final Supplier<WorkerInfo> resources;
    private final String shmDirectory;
    private final int index;
    private final Process process;
    private final Publication toWorker;
    private final Subscription fromWorker;
    private final FragmentAssembler assembler;
    private final CompletableFuture<Long> ready = new CompletableFuture<>();

    private WorkerProcess(String name, ControlPlane plane, Listener listener, List<String> jvmOptions,
                          String hostName, Supplier<WorkerInfo> resources, String shmDirectory,
                          SimulatedGpus simulatedGpus, ValueCodec codec, Duration timeout) {
        super(name, listener, codec, timeout);
        this.plane = plane;
        this.hostName = hostName;
        this.resources = resources;
        this.shmDirectory = shmDirectory;
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
                Long.toString(ProcessHandle.current().pid()), hostName, shmDirectory, WorkerMain.gpuArgument(simulatedGpus)));
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
     * @param name         the process name, as in {@code ActorOptions.process(name)}
     * @param plane        the control plane
     * @param listener     told of the worker's events
     * @param jvmOptions   JVM options added after the driver JVM's own
     * @param hostName     the driver's host name in plans, which the child shares
     * @param resources    what the worker offers: the driver's host's (asked when first needed)
     * @param shmDirectory the shared-memory directory of the driver's host
     * @param simulatedGpus the driver's simulated GPUs, which the child shares, or null for CUDA's
     * @param codec        the runtime's codec
     * @param timeout      how long the JVM may take to start and connect, and an actor to be created in it
     * @return the connected worker
     * @throws IllegalStateException if it does not start in time (it is then killed)
     */
    public static WorkerProcess start(String name, ControlPlane plane, Listener listener, List<String> jvmOptions,
                                      String hostName, Supplier<WorkerInfo> resources, String shmDirectory,
                                      SimulatedGpus simulatedGpus, ValueCodec codec, Duration timeout) {
        WorkerProcess w = new WorkerProcess(name, plane, listener, jvmOptions, hostName, resources, shmDirectory,
                simulatedGpus, codec, timeout);
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

    @Override
    public WorkerInfo resources() {
        return resources.get();
    }

    @Override
    public String hostName() {
        return hostName;
    }

    /** @return the worker JVM's pid */
    @Override
    public long pid() {
        return process.pid();
    }

    /** @return the driver's UDP endpoint: a child JVM is a client of the driver's media driver */
    @Override
    public String endpoint() {
        return plane.endpoint();
    }

    @Override
    public String shmDirectory() {
        return shmDirectory;
    }

    @Override
    Publication toWorker() {
        return toWorker;
    }

    /** Receives messages; the control plane's thread only. */
    int poll() {
        return fromWorker.poll(assembler, 16);
    }

    @Override
    void onOtherMessage(Message m) {
        if (m.type() != Message.READY) {
            super.onOtherMessage(m);
        }
        ready.complete(m.getLong());
    }

    /** A malformed message from the worker: it can no longer be trusted, so it is stopped. */
    void protocolError(RuntimeException e) {
        died("worker JVM " + name() + " sent a malformed control message (" + e.getMessage() + "); it was killed");
        kill();
    }

    @Override
    void onDeath(String why) {
        ready.completeExceptionally(new WorkerDeathException(why));
        plane.remove(this);
    }

    @Override
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

    @Override
    public void kill() {
        if (process != null) {
            process.destroyForcibly();
            try {
                if (process.waitFor(5, TimeUnit.SECONDS)) {
                    StaleFiles.removeShared(java.nio.file.Path.of(shmDirectory)); // it cannot remove its own files now
                }
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
        return "worker JVM " + name() + (process != null ? " (pid " + process.pid() + ")" : "");
    }
}
