package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Decides which actors of a plan share a thread ({@link ActorSchedule#carrier()}), per JVM, from
 * {@link CompileOptions#actorThreads()} and the JVM's cores ({@link Topology#cores}).
 *
 * <p>An actor may share when it has no GPU, takes part in no all-reduce, and every channel it reads or writes is
 * {@link Transport#IN_PROCESS}: a carrier must never sleep in a GPU stream, a collective or another process's
 * channel while it owes the other actors of its thread their work. The others keep a thread each. In each JVM, the
 * sharing actors get {@code min(sharing, max(1, limit - others))} threads, where the limit is
 * {@code actorThreads}, or for {@link CompileOptions#AUTO_THREADS} the JVM's cores (a thread per actor when the
 * cores are unknown). They are taken in topological order (by their first COMPUTE node) and cut into that many
 * contiguous groups, balanced by COMPUTE operations; a group's first actor is its carrier. Contiguous groups keep
 * the hand-offs of a pipeline inside a thread, and the topological order lets a carrier run upstream actors before
 * the downstream ones that wait on them.
 */
final class ThreadPlanner {

    private ThreadPlanner() {
    }

    /**
     * @param schedules the plan's schedules, each on its own thread
     * @param channels  the plan's resolved channels
     * @param topology  where the actors live and the cores of each JVM
     * @param options   {@link CompileOptions#actorThreads()}
     * @return the schedules in the same order, those that share a thread with their carrier
     */
    static List<ActorSchedule> share(List<ActorSchedule> schedules, List<ChannelSpec> channels, Topology topology,
                                     CompileOptions options) {
        if (options.actorThreads() == CompileOptions.THREAD_PER_ACTOR) {
            return schedules;
        }
        Map<ActorPlacement, List<ActorSchedule>> sharing = new LinkedHashMap<>();
        Map<ActorPlacement, Integer> alone = new HashMap<>();
        for (ActorSchedule s : schedules) {
            if (ExecutionPlan.mayShareThread(s, channels)) {
                sharing.computeIfAbsent(s.placement().jvm(), k -> new ArrayList<>()).add(s);
            } else {
                alone.merge(s.placement().jvm(), 1, Integer::sum);
            }
        }
        Map<Integer, Integer> carriers = new HashMap<>();
        for (var e : sharing.entrySet()) {
            List<ActorSchedule> jvm = e.getValue();
            int limit = options.actorThreads() != CompileOptions.AUTO_THREADS ? options.actorThreads()
                    : topology.cores(e.getKey());
            if (limit == Topology.UNKNOWN_CORES) {
                continue;
            }
            int threads = Math.min(jvm.size(), Math.max(1, limit - alone.getOrDefault(e.getKey(), 0)));
            if (threads == jvm.size()) {
                continue;
            }
            jvm.sort(Comparator.comparingInt(ThreadPlanner::firstCompute));
            int[] weights = jvm.stream().mapToInt(ThreadPlanner::computes).toArray();
            int[] firsts = groups(weights, threads);
            for (int g = 0; g < threads; g++) {
                int end = g + 1 < threads ? firsts[g + 1] : jvm.size();
                int carrier = jvm.get(firsts[g]).actor();
                for (int i = firsts[g] + 1; i < end; i++) {
                    carriers.put(jvm.get(i).actor(), carrier);
                }
            }
        }
        return schedules.stream().map(s -> carriers.containsKey(s.actor()) ? s.onThreadOf(carriers.get(s.actor())) : s)
                .toList();
    }

    private static int firstCompute(ActorSchedule s) {
        for (Operation op : s.ops()) {
            if (op instanceof Compute c) {
                return c.node();
            }
        }
        return Integer.MAX_VALUE;
    }

    private static int computes(ActorSchedule s) {
        return Math.max(1, (int) s.ops().stream().filter(op -> op instanceof Compute).count());
    }

    /**
     * Cuts a sequence of weights into {@code n} contiguous non-empty groups whose heaviest is as light as possible:
     * the smallest cap for which filling groups left to right fits in {@code n} (binary search), then that fill,
     * which closes a group early only when each remaining weight must have a group of its own.
     *
     * @param weights the weights, each >= 1
     * @param n       groups, 1 to {@code weights.length}
     * @return the index of each group's first weight
     */
    static int[] groups(int[] weights, int n) {
        long low = 0;
        long high = 0;
        for (int w : weights) {
            low = Math.max(low, w);
            high += w;
        }
        while (low < high) {
            long cap = (low + high) >>> 1;
            if (fill(weights, n, cap) != null) {
                high = cap;
            } else {
                low = cap + 1;
            }
        }
        return fill(weights, n, low);
    }

    /** @return the first index of each of {@code n} groups of at most {@code cap} each, or null if they do not fit */
    private static int[] fill(int[] weights, int n, long cap) {
        int[] firsts = new int[n];
        int group = 0;
        long sum = 0;
        for (int i = 0; i < weights.length; i++) {
            boolean full = sum + weights[i] > cap;
            boolean mustSplit = weights.length - i == n - group - 1; // the rest need one group each
            if (i > 0 && (full || mustSplit)) {
                if (++group == n) {
                    return null;
                }
                firsts[group] = i;
                sum = 0;
            }
            sum += weights[i];
        }
        return group == n - 1 ? firsts : null;
    }
}
