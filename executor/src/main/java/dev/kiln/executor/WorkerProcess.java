package dev.kiln.executor;

import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * The driver's handle on a child JVM it started on its own host (same {@code java} and JVM flags as the driver's JVM,
 * plus {@code KilnOptions.workerJvmOptions}; the class path {@code KilnOptions.workerClassPath}, by default
 * {@link WorkerClassPath#automatic}). The child's standard output and error pass through pipes to the driver's
 * (an {@code OutputTail} keeps their last lines), so that a child that does not start fails with what it said and
 * the likely fix. The child runs {@link WorkerMain}, the one worker, and joins like any other worker, over
 * {@code aeron:ipc} on the driver's media driver, with a secret made for it alone (32 bytes from
 * {@link SecureRandom}) and written to its standard input, a pipe only this process holds: never its command
 * line or environment, which other processes can read. So a process of the same user on the driver's Aeron
 * directory can neither join in its place nor send it a message it would believe. When the process ends, for
 * whatever reason, every waiting request fails and the {@link RemoteHost.Listener} hears of it at once (the
 * JVM's process reaper reports the exit within milliseconds).
 *
 * <p>Thread-safe: requests may be sent from any thread; messages are received by the control plane's thread.
 */
public final class WorkerProcess extends RemoteHost {

    private static final SecureRandom RANDOM = new SecureRandom();
    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private final ControlPlane plane;
    private final String hostName;
    private final Supplier<WorkerInfo> resources;
    private final String shmDirectory;
    private volatile Process process;
    private final OutputTail output = new OutputTail();
    private final int classPathEntries;
    private final CompletableFuture<Long> ready = new CompletableFuture<>();

    private WorkerProcess(String name, ControlPlane plane, Listener listener, List<String> jvmOptions,
                          List<Path> classPath, String hostName, Supplier<WorkerInfo> resources, String shmDirectory,
                          SimulatedGpus simulatedGpus, ValueCodec codec, Duration timeout) {
        super(name, listener, codec, timeout);
        this.plane = plane;
        this.hostName = hostName;
        this.resources = resources;
        this.shmDirectory = shmDirectory;
        this.classPathEntries = classPath.size();
        byte[] secret = new byte[WorkerMain.SECRET_BYTES];
        RANDOM.nextBytes(secret);
        int stream = plane.expectChild(name, secret, this);
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp")) {
                command.add(arg); // a second debugger on the same port would stop the worker from starting
            }
        }
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", WorkerClassPath.argument(classPath), WorkerMain.class.getName(),
                plane.directory().toString(), Integer.toString(stream), name,
                Long.toString(ProcessHandle.current().pid()), hostName, shmDirectory, WorkerMain.gpuArgument(simulatedGpus),
                Long.toString(plane.settings().workerTimeout().toMillis())));
        try {
            process = new ProcessBuilder(command).start();
            output.pump("kiln-worker-out-" + name, process.getInputStream(), System.out);
            output.pump("kiln-worker-err-" + name, process.getErrorStream(), System.err);
        } catch (IOException e) {
            Arrays.fill(secret, (byte) 0);
            plane.forgetChild(name);
            throw new IllegalStateException("cannot start worker JVM " + name + " (" + command.getFirst() + "): "
                    + e.getMessage(), e);
        }
        try (OutputStream in = process.getOutputStream()) {
            in.write(secret);
        } catch (IOException e) {
            // it exited already (a JVM option it refuses, a class path without WorkerMain): its exit, below, fails
            // the start with what it printed; one still alive reads the end of its input and exits, or is killed
            LOG.log(System.Logger.Level.DEBUG, "worker JVM " + name + " did not take its secret: " + e.getMessage());
        } finally {
            Arrays.fill(secret, (byte) 0);
        }
        Process started = process;
        started.onExit().thenRun(() -> {
            int code = started.exitValue();
            String why = "worker JVM " + name + " (pid " + started.pid() + ") exited with code " + code + switch (code) {
                case WorkerNode.EXIT_DRIVER_LOST -> " (it lost the driver)";
                case WorkerNode.EXIT_DECLARED_LOST -> " (the driver had declared it lost)";
                default -> "";
            };
            if (!died(why)) {
                LOG.log(System.Logger.Level.INFO, why); // dead already: its status still tells how it ended
            }
        });
    }

    /**
     * Starts a child JVM and waits until it joined.
     *
     * @param name          the process name, as in {@code ActorOptions.process(name)}
     * @param plane         the control plane
     * @param listener      told of the worker's events
     * @param jvmOptions    JVM options added after the driver JVM's own
     * @param classPath     the child's class path ({@link WorkerClassPath#automatic} unless the user set one)
     * @param hostName      the driver's host name in plans, which the child shares
     * @param resources     what the worker offers: the driver's host's (asked when first needed)
     * @param shmDirectory  the shared-memory directory of the driver's host
     * @param simulatedGpus the driver's simulated GPUs, which the child shares, or null for CUDA's
     * @param codec         the runtime's codec
     * @param timeout       how long the JVM may take to start and join, and an actor to be created in it
     * @return the joined worker
     * @throws IllegalStateException if it exits before it joined, or does not join in time (it is then killed),
     *                               with the last lines of its output and the likely fix
     */
    public static WorkerProcess start(String name, ControlPlane plane, Listener listener, List<String> jvmOptions,
                                      List<Path> classPath, String hostName, Supplier<WorkerInfo> resources,
                                      String shmDirectory, SimulatedGpus simulatedGpus, ValueCodec codec,
                                      Duration timeout) {
        WorkerProcess w = new WorkerProcess(name, plane, listener, jvmOptions, classPath, hostName, resources,
                shmDirectory, simulatedGpus, codec, timeout);
        try {
            w.ready.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return w;
        } catch (TimeoutException e) {
            w.kill();
            throw new IllegalStateException(w.whyNotStarted("did not join within " + timeout
                    + " (KilnOptions.workerStartTimeout); it was killed", "if it was only slow (a busy machine), give"
                    + " it more time with KilnOptions.workerStartTimeout"), e);
        } catch (ExecutionException e) {
            w.kill();
            throw new IllegalStateException(w.whyNotStarted("failed to start: " + e.getCause().getMessage(),
                    "see its output above"), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            w.kill();
            throw new IllegalStateException("interrupted while worker JVM " + name + " was starting", e);
        }
    }

    /**
     * The message of a start that failed: what happened, the child's last lines and the likely fix. Waits (up to 2 s)
     * for its output to be read to the end: it has exited or was killed.
     *
     * @param what     what happened, after "worker JVM name "
     * @param fallback the advice when its output shows no known cause
     * @return the message
     */
    private String whyNotStarted(String what, String fallback) {
        try {
            output.await(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return "worker JVM " + name() + " " + what
                + ". Its last output (also on the driver's standard output and error):" + output.text()
                + "\nLikely fix: " + likelyFix(output.lines(), classPathEntries, fallback);
    }

    /**
     * @param lines     what a child JVM that did not start printed last
     * @param classPath how many entries its class path had
     * @param fallback  the advice when the lines show no known cause
     * @return the likely fix
     */
    static String likelyFix(List<String> lines, int classPath, String fallback) {
        String all = String.join("\n", lines);
        if (all.contains("Could not find or load main class") || all.contains("ClassNotFoundException")
                || all.contains("NoClassDefFoundError")) {
            return "the worker JVM's class path (" + classPath + " entries) lacks a class it needs (Kiln's, a"
                    + " dependency's or yours): set KilnOptions.workerClassPath to the jars and directories of your"
                    + " application and of Kiln with its dependencies, or run the driver from a class path that"
                    + " contains Kiln's jars";
        }
        if (all.contains("jdk.internal.misc") || all.contains("IllegalAccessError")) {
            return "start the driver JVM with " + JvmFlags.ADD_EXPORTS + " (worker JVMs get the driver's flags), or"
                    + " add it to KilnOptions.workerJvmOptions";
        }
        if (all.contains("Unrecognized VM option") || all.contains("Unrecognized option")
                || all.contains("Could not create the Java Virtual Machine")) {
            return "the worker's java (" + System.getProperty("java.home") + ") refuses one of its JVM options:"
                    + " correct KilnOptions.workerJvmOptions, or the driver JVM's own options, which worker JVMs get"
                    + " too";
        }
        if (all.contains("UnsupportedClassVersionError")) {
            return "a class on the worker's class path was compiled for a newer Java than the worker's java ("
                    + System.getProperty("java.home") + "): run the driver on that Java or newer";
        }
        if (all.contains("OutOfMemoryError") || all.contains("Could not reserve enough space")) {
            return "give the worker a heap that fits: -Xmx in KilnOptions.workerJvmOptions";
        }
        return fallback;
    }

    /**
     * @param pid a process id a HELLO claims
     * @return whether it is this child's process (a HELLO in a child's name from another pid is ignored)
     */
    boolean isProcess(long pid) {
        Process p = process;
        return p != null && p.pid() == pid;
    }

    /**
     * The child proved its secret and is ready; the control plane's thread.
     *
     * @param hello what it said about itself
     * @param info  what it advertised
     * @throws IllegalStateException if it is not the process this handle started
     */
    void joined(ControlPlane.Hello hello, WorkerInfo info) {
        if (hello.pid() != process.pid()) {
            throw new IllegalStateException("child JVM " + name() + " joined from pid " + hello.pid() + ", not "
                    + process.pid());
        }
        ready.complete(hello.pid());
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
    void onDeath(String why) {
        ready.completeExceptionally(new WorkerDeathException(why));
        plane.forgetChild(name());
    }

    @Override
    public void shutdown(Duration timeout) {
        if (process != null && process.isAlive()) {
            send(new Message.Shutdown());
            try {
                if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    kill();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                kill();
            }
        }
        died("worker JVM " + name() + " was shut down");
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
        died("worker JVM " + name() + " was killed");
    }

    @Override
    public String toString() {
        return "worker JVM " + name() + (process != null ? " (pid " + process.pid() + ")" : "");
    }
}
