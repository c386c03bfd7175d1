package dev.kiln;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A test's child JVM: this JVM's {@code java}, flags and class path running {@code main}, its output in a log
 * file, and a first line it prints when it is ready. For crash tests, which kill it with a signal.
 */
public final class ChildJvm implements AutoCloseable {

    private final Process process;
    private final Path log;

    private ChildJvm(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /**
     * Starts {@code main} and waits for it to print {@code ready} on its first line.
     *
     * @param main    the main class, from the test class path
     * @param log     where its output goes
     * @param timeout how long it may take to be ready
     * @param args    its arguments
     * @return the ready child
     * @throws IOException if it cannot start, or ends or says something else before it is ready
     */
    public static ChildJvm start(String main, Path log, Duration timeout, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp") && !arg.startsWith("-javaagent")) {
                command.add(arg);
            }
        }
        command.addAll(List.of("-Xmx256m", "-cp", System.getProperty("java.class.path"), main));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectError(log.toFile()).start();
        ChildJvm child = new ChildJvm(p, log);
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> first = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                return "(" + e + ")";
            }
        });
        String line;
        try {
            line = first.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            line = "(nothing within " + timeout + ": " + e + ")";
        }
        if (!"ready".equals(line)) {
            child.close();
            throw new IOException(main + " did not get ready: " + line + "; its errors:\n" + child.log());
        }
        return child;
    }

    /** @return its process */
    public Process process() {
        return process;
    }

    /** @return its pid */
    public long pid() {
        return process.pid();
    }

    /**
     * @param run a Kiln run directory
     * @return the Aeron directory this child's media driver made there
     * @throws IOException if the directory cannot be listed
     */
    public Path aeronDirectory(Path run) throws IOException {
        try (Stream<Path> dirs = Files.list(run)) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("aeron-" + pid() + "-")).findFirst()
                    .orElseThrow(() -> new AssertionError("no Aeron directory of pid " + pid() + " in " + run));
        }
    }

    /** @return what it wrote on its error stream so far */
    public String log() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /**
     * Sends it a signal with {@code kill}.
     *
     * @param signal e.g. {@code STOP}, {@code CONT}, {@code KILL}
     */
    public void signal(String signal) {
        KilnTestSupport.signal(signal, process.pid());
    }

    /** Kills it (SIGKILL) and waits up to 10 s for it to end. */
    @Override
    public void close() {
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
