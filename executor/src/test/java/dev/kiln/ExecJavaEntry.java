package dev.kiln;

import dev.kiln.graph.ActorRef;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The application {@link ExecJavaLauncher} runs for {@link WorkerStartTest}: places an actor in a worker JVM, calls
 * it, and prints the result, or why it failed, on standard output.
 */
public final class ExecJavaEntry {

    private ExecJavaEntry() {
    }

    /** An actor. */
    public static final class Adder {
        public long add(long x) {
            return x + 1;
        }

        public long pid() {
            return ProcessHandle.current().pid();
        }
    }

    /**
     * @param args none
     * @throws Exception if a call times out
     */
    public static void main(String[] args) throws Exception {
        if (ExecJavaEntry.class.getClassLoader() == ClassLoader.getSystemClassLoader()) {
            System.out.println("not loaded through the launcher's class loader: the test is wrong");
            return;
        }
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().workerStartTimeout(Duration.ofSeconds(90)))) {
            ActorRef<Adder> a = kiln.actor(Adder::new, ActorOptions.process());
            long sum = kiln.call(a, Adder::add, 41L).get(60, TimeUnit.SECONDS);
            long pid = kiln.call(a, Adder::pid).get(60, TimeUnit.SECONDS);
            System.out.println("result " + sum + " in another JVM: " + (pid != ProcessHandle.current().pid()));
        } catch (RuntimeException e) {
            System.out.println("failed: " + e.getMessage());
        }
    }
}
