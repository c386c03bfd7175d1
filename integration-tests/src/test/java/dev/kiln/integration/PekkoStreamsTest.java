package dev.kiln.integration;

import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.stream.javadsl.JavaFlowSupport;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A Kiln graph as one stage of a Pekko Streams graph: {@code Source -> Kiln (asProcessor) -> slow sink}, a million
 * elements, through Pekko's own bridge for {@code java.util.concurrent.Flow} ({@code JavaFlowSupport}).
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class PekkoStreamsTest {

    /** Pekko's default input buffer of the stage after the processor: what it may request ahead of its sink. */
    private static final int PEKKO_INPUT_BUFFER = 16;

    @Test
    void aMillionElementsThroughFourActorsInOrderWithBoundedInflightAndFlatMemory() throws Exception {
        ActorSystem system = ActorSystem.create("kiln-flow");
        try (FourStages stages = new FourStages()) {
            Long count = Source.range(0, FourStages.ELEMENTS - 1)
                    .map(i -> stages.pulled(i.longValue()))
                    .via(JavaFlowSupport.Flow.fromProcessor(stages.graph::asProcessor))
                    .map(result -> {
                        stages.deliver(result);
                        return result;
                    })
                    .runWith(Sink.fold(0L, (n, r) -> n + 1), system)
                    .toCompletableFuture().get(240, TimeUnit.SECONDS);
            assertEquals(FourStages.ELEMENTS, count);
            stages.assertBoundedAndExact("Pekko Streams", PEKKO_INPUT_BUFFER);
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
    }
}
