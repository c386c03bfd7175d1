package dev.kiln.bench;

import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode8;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple8;
import dev.kiln.tensor.Tensor;

import java.util.List;

/**
 * A compiled Kiln graph of the scenario, one actor per stage, with Kiln's default threads (each actor on its own
 * until they outnumber the cores, then shared: {@code CompileOptions.actorThreads}) ({@code Kiln.local()}); the JMH
 * thread is the driver. {@link #submit} is {@code execute},
 * {@link #next} the oldest future's {@code get}; or, for the allocation-free path ({@code take}),
 * {@code submit} / {@code submitArgs} with a reused array and {@code take(seq)} /
 * {@code take(seq, outputs)} into a reused array.
 */
final class CompiledPath extends Path {

    private final Kiln kiln;
    private final boolean worker;
    private final CompiledGraph<Object, Object> graph;
    private final GraphFuture<?>[] ring;
    private final boolean take;
    private final long[] seqs;
    private final Object[] args = new Object[8];
    private final Object[] outputs = new Object[4];
    private long submitted;
    private long finished;

    /**
     * @param inflight the graph's {@code maxInflight}, at least {@code window}
     * @param worker   whether the actors live in a worker JVM (one for all stages), reached through shared memory
     * @param take     whether to run the allocation-free path, submit and take, instead of execute and get
     */
    CompiledPath(Scenario scenario, IdleMode idle, int window, int inflight, boolean worker, boolean take) {
        super(scenario, idle, window);
        this.worker = worker;
        this.take = take;
        this.ring = new GraphFuture<?>[window];
        this.seqs = new long[window];
        this.kiln = Kiln.local();
        try {
            CompileOptions options = CompileOptions.defaults().idle(idle).maxInflight(inflight);
            InputNode<Long> in = Graph.input();
            this.graph = erased(switch (scenario) {
                case SINGLE -> kiln.compile(in, stage(0).bind(Stage::step, in), options);
                case CHAIN4 -> {
                    Node<Long> x = stage(0).bind(Stage::step, in);
                    for (int i = 1; i < 4; i++) {
                        x = stage(i).bind(Stage::step, x);
                    }
                    yield kiln.compile(in, x, options);
                }
                case SCATTER4 -> kiln.compile(in, Graph.outputs(List.of(stage(0).bind(Stage::step, in),
                        stage(1).bind(Stage::step, in), stage(2).bind(Stage::step, in),
                        stage(3).bind(Stage::step, in))), options);
                case ARGS8 -> {
                    InputNode8<Long, Long, Long, Long, Long, Long, Long, Long> args = Graph.input8();
                    yield kiln.compile(args, stage(0).bind(Stage::mix8, args.first(), args.second(), args.third(),
                            args.fourth(), args.fifth(), args.sixth(), args.seventh(), args.eighth()), options);
                }
                case TENSOR_4K, TENSOR_1M, TENSOR_64M -> {
                    InputNode<Tensor> t = Graph.input();
                    yield kiln.compile(t, stage(0).bind(Stage::touch, t), options);
                }
            });
        } catch (RuntimeException e) {
            kiln.close();
            super.close();
            throw e;
        }
    }

    /** One field for the scenarios' graphs, whose input types differ: {@link #submit} passes each its own. */
    @SuppressWarnings("unchecked")
    private static CompiledGraph<Object, Object> erased(CompiledGraph<?, ?> graph) {
        return (CompiledGraph<Object, Object>) graph;
    }

    private ActorRef<Stage> stage(int i) {
        return worker ? kiln.actor(() -> new Stage(i), ActorOptions.process("bench-worker")) : kiln.actor(() -> new Stage(i));
    }

    @Override
    void submit(long x) {
        if (take) {
            seqs[(int) (submitted++ % window)] = switch (scenario) {
                case SINGLE, CHAIN4, SCATTER4 -> graph.submit(x);
                case ARGS8 -> {
                    args[0] = x;
                    for (int i = 1; i < 8; i++) {
                        args[i] = Scenario.arg(x, i);
                    }
                    yield graph.submitArgs(args);
                }
                case TENSOR_4K, TENSOR_1M, TENSOR_64M -> graph.submit(tensor);
            };
            return;
        }
        ring[(int) (submitted++ % window)] = switch (scenario) {
            case SINGLE, CHAIN4, SCATTER4 -> graph.execute(x);
            // As an application writes it: the Tuple8 of the arguments is part of the cost.
            case ARGS8 -> graph.execute(new Tuple8<>(x, Scenario.arg(x, 1), Scenario.arg(x, 2), Scenario.arg(x, 3),
                    Scenario.arg(x, 4), Scenario.arg(x, 5), Scenario.arg(x, 6), Scenario.arg(x, 7)));
            case TENSOR_4K, TENSOR_1M, TENSOR_64M -> graph.execute(tensor);
        };
    }

    @Override
    long next() {
        int at = (int) (finished++ % window);
        if (take) {
            if (scenario == Scenario.SCATTER4) {
                graph.take(seqs[at], outputs);
                return (Long) outputs[0] + (Long) outputs[1] + (Long) outputs[2] + (Long) outputs[3];
            }
            return (Long) graph.take(seqs[at]);
        }
        Object result = ring[at].get();
        ring[at] = null;
        if (result instanceof List<?> outputs) {
            long sum = 0;
            for (int i = 0; i < outputs.size(); i++) {
                sum += (Long) outputs.get(i);
            }
            return sum;
        }
        return (Long) result;
    }

    @Override
    public void close() {
        graph.close();
        kiln.close();
        super.close();
    }
}
