package dev.kiln.examples;

import dev.kiln.ActorHost;
import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.KilnWorker;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * A driver for joined workers: it listens for workers, waits until {@code --workers N} have
 * joined, puts one pipeline stage on each (by host name) and one in the driver, and runs the
 * compiled chain, checking every result. The workers are {@code bin/kiln-worker} processes,
 * started anywhere the driver's endpoint is reachable, with this class on their class path.
 *
 * <p>From the repository's root, after {@code mvn -q -DskipTests package} (which builds
 * {@code examples/target/classes} and {@code executor/target/lib}), in one shell:
 *
 * <pre>
 * openssl rand -hex 32 &gt; /tmp/kiln-secret &amp;&amp; chmod 600 /tmp/kiln-secret
 * JAVA=$(ls -d /usr/lib/jvm/*25* | head -n 1)/bin/java    # a JDK 25: plain java may be an older one
 * "$JAVA" --enable-native-access=ALL-UNNAMED --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
 *      --sun-misc-unsafe-memory-access=allow \
 *      -cp "examples/target/classes:executor/target/classes:executor/target/lib/*" \
 *      dev.kiln.examples.HostsDemo --secret-file /tmp/kiln-secret --listen 127.0.0.1:7400 --workers 2 &amp;
 * KILN_CLASSPATH=examples/target/classes bin/kiln-worker --driver 127.0.0.1:7400 \
 *      --secret-file /tmp/kiln-secret --host-name node-1 &amp;
 * KILN_CLASSPATH=examples/target/classes bin/kiln-worker --driver 127.0.0.1:7400 \
 *      --secret-file /tmp/kiln-secret --host-name node-2
 * </pre>
 *
 * <p>The class path is quoted so that {@code java} itself expands {@code lib/*} (the shell would leave a
 * glob inside a colon-separated list unexpanded, and {@code java} expands only a whole {@code dir/*}
 * entry). {@code bin/kiln-worker} finds a JDK 25 by itself ({@code JAVA_HOME}, else under
 * {@code /usr/lib/jvm}).
 *
 * <p>Exits with status 1 if a result differs; the workers exit when it closes.
 */
public final class HostsDemo {

    private HostsDemo() {
    }

    /** One stage: adds its step. */
    public static final class Step {
        private final long step;

        /** @param step what it adds */
        public Step(long step) {
            this.step = step;
        }

        /**
         * @param x a value
         * @return {@code x + step}
         */
        public long add(long x) {
            return x + step;
        }
    }

    /**
     * Runs the demo.
     *
     * @param args {@code --secret-file F [--listen ADDRESS:PORT] [--workers N] [--executions N]}
     * @throws Exception if the workers do not join within a minute
     */
    public static void main(String[] args) throws Exception {
        Path secretFile = null;
        String listen = "127.0.0.1:7400";
        int workers = 2;
        int executions = 10_000;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--secret-file" -> secretFile = Path.of(args[++i]);
                case "--listen" -> listen = args[++i];
                case "--workers" -> workers = Integer.parseInt(args[++i]);
                case "--executions" -> executions = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (secretFile == null) {
            throw new IllegalArgumentException("--secret-file is required");
        }
        KilnOptions options = KilnOptions.defaults().joinSecret(KilnWorker.readSecret(secretFile)).listen(listen)
                .hostName("driver-host");
        try (Kiln kiln = Kiln.local(options)) {
            System.out.println("waiting for " + workers + " workers on " + kiln.joinEndpoint().orElseThrow());
            List<ActorHost> joined = kiln.awaitWorkers(workers, Duration.ofMinutes(1));
            InputNode<Long> in = Graph.input();
            Node<Long> node = in;
            long total = 0;
            for (int w = 0; w < joined.size(); w++) {
                ActorHost host = joined.get(w);
                System.out.println("joined: " + host.name() + " " + host.resources());
                long step = w + 1;
                ActorRef<Step> s = kiln.actor(() -> new Step(step), ActorOptions.host(host.resources().hostName()));
                node = s.bind(Step::add, node);
                total += step;
            }
            ActorRef<Step> last = kiln.actor(() -> new Step(1000));
            node = last.bind(Step::add, node);
            total += 1000;
            CompileOptions compile = CompileOptions.defaults().idle(IdleMode.BACKOFF);
            try (CompiledGraph<Long, Long> g = kiln.compile(in, node, compile)) {
                System.out.println(g.plan());
                long[] nanos = new long[executions];
                for (int i = 0; i < executions; i++) {
                    long start = System.nanoTime();
                    long y = g.execute((long) i).get();
                    nanos[i] = System.nanoTime() - start;
                    if (y != i + total) {
                        System.err.println("execution " + i + ": got " + y + ", expected " + (i + total));
                        System.exit(1);
                    }
                }
                Arrays.sort(nanos);
                System.out.printf(Locale.ROOT, "%d executions across %d hosts, all exact; round trip median %.1f us,"
                        + " p99 %.1f us%n", executions, joined.size() + 1, nanos[executions / 2] / 1e3,
                        nanos[(int) (executions * 0.99)] / 1e3);
            }
        }
    }
}
