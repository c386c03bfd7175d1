package dev.kiln.integration;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The graph both stream tests run: four in-process actors in a chain, {@code x -> ((x + 1) * 3 - 7) ^ 0x5A}, and
 * what the tests measure around it. The downstream checks each result against {@link #expected} as it arrives (it
 * keeps none, so that the heap shows only what Kiln and the runtime hold), is slow for the first
 * {@link #SLOW_PER_BLOCK} elements of every block of {@link #BLOCK} (so that a stage that ignored demand would pile
 * up results while it waits), and samples how far the source ran ahead of it and how many executions the graph had
 * open.
 */
final class FourStages implements AutoCloseable {

    static final int ELEMENTS = 1_000_000;
    static final int MAX_INFLIGHT = 16;
    static final int BLOCK = 10_000;
    static final int SLOW_PER_BLOCK = 50;
    private static final long SLOW_NANOS = 100_000;

    /** Stage 1; counts the elements that entered the graph. */
    public static final class Add {
        private final AtomicLong entered;

        public Add(AtomicLong entered) {
            this.entered = entered;
        }

        public long apply(long x) {
            entered.incrementAndGet();
            return x + 1;
        }
    }

    /** Stage 2. */
    public static final class Triple {
        public long apply(long x) {
            return x * 3;
        }
    }

    /** Stage 3. */
    public static final class Subtract {
        public long apply(long x) {
            return x - 7;
        }
    }

    /** Stage 4. */
    public static final class Mask {
        public long apply(long x) {
            return x ^ 0x5A;
        }
    }

    final Kiln kiln = Kiln.local();
    final AtomicLong entered = new AtomicLong();
    final CompiledGraph<Long, Long> graph;

    private final AtomicLong pulled = new AtomicLong();
    private long delivered;
    private long maxAhead;
    private int maxOpen;
    private long wrong;
    private String firstWrong;
    private long heapAt10;
    private long heapAt100;

    FourStages() {
        ActorRef<Add> add = kiln.actor(() -> new Add(entered));
        ActorRef<Triple> triple = kiln.actor(Triple::new);
        ActorRef<Subtract> subtract = kiln.actor(Subtract::new);
        ActorRef<Mask> mask = kiln.actor(Mask::new);
        InputNode<Long> in = Graph.input();
        graph = kiln.compile(in, mask.bind(Mask::apply, subtract.bind(Subtract::apply,
                triple.bind(Triple::apply, add.bind(Add::apply, in)))), CompileOptions.defaults().maxInflight(MAX_INFLIGHT));
    }

    static long expected(long x) {
        return ((x + 1) * 3 - 7) ^ 0x5A;
    }

    /** The source's side: element {@code x} leaves the source for the Kiln stage. */
    long pulled(long x) {
        pulled.incrementAndGet();
        return x;
    }

    /** The downstream's side, one thread at a time (the runtime's sink): checks, samples, is slow at times. */
    void deliver(long result) {
        long i = delivered;
        if (result != expected(i) && wrong++ == 0) {
            firstWrong = "element " + i + ": got " + result + ", expected " + expected(i);
        }
        delivered = i + 1;
        maxAhead = Math.max(maxAhead, pulled.get() - delivered);
        if (i % BLOCK < SLOW_PER_BLOCK) {
            maxOpen = Math.max(maxOpen, graph.statistics().inFlight());
            LockSupport.parkNanos(SLOW_NANOS);
        }
        if (delivered == ELEMENTS / 10) {
            heapAt10 = heapAfterGc();
        }
    }

    /**
     * After the stream completed: every result came, exact and in order; the graph never had more than
     * {@code maxInflight} executions open; the source never ran further ahead of the sink than {@code maxInflight}
     * plus the buffer of the runtime's stage after Kiln's; the heap after GC did not grow from 10 % to 100 %.
     *
     * @param runtime         for the report
     * @param nextStageBuffer how many elements the stage after Kiln's may request ahead of the sink
     */
    void assertBoundedAndExact(String runtime, int nextStageBuffer) {
        heapAt100 = heapAfterGc();
        System.out.println(runtime + ": " + report());
        assertEquals(0, wrong, firstWrong);
        assertEquals(ELEMENTS, delivered);
        assertEquals(ELEMENTS, entered.get(), "executions started");
        assertTrue(maxOpen <= MAX_INFLIGHT, report());
        assertTrue(maxAhead <= MAX_INFLIGHT + nextStageBuffer + 2, report());
        assertTrue(heapAt100 - heapAt10 < 24L << 20, report());
        assertEquals(0, graph.statistics().inFlight());
    }

    private String report() {
        return "delivered " + delivered + ", wrong " + wrong + ", max ahead " + maxAhead + ", max open " + maxOpen
                + ", heap after GC at 10 % " + heapAt10 / 1024 + " KiB, at 100 % " + heapAt100 / 1024 + " KiB";
    }

    private static long heapAfterGc() {
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        System.gc();
        return memory.getHeapMemoryUsage().getUsed();
    }

    @Override
    public void close() {
        kiln.close();
    }
}
