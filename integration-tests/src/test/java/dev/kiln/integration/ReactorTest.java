package dev.kiln.integration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import reactor.adapter.JdkFlowAdapter;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

import java.time.Duration;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A Kiln graph as one stage of a Reactor {@code Flux}: {@code range -> Kiln (asProcessor) -> publishOn -> slow
 * consumer}, a million elements, bridged with Reactor's {@code JdkFlowAdapter}.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ReactorTest {

    /** What publishOn may request ahead of its slow consumer. */
    private static final int PREFETCH = 16;

    @Test
    void aMillionElementsThroughFourActorsInOrderWithBoundedInflightAndFlatMemory() {
        Scheduler consumer = Schedulers.newSingle("slow-consumer");
        try (FourStages stages = new FourStages()) {
            Flow.Processor<Long, Long> kiln = stages.graph.asProcessor();
            JdkFlowAdapter.publisherToFlowPublisher(Flux.range(0, FourStages.ELEMENTS).map(i -> stages.pulled(i)))
                    .subscribe(kiln);
            // block() waits on a latch; reactor-test's StepVerifier.verify polls on this thread, taking a core.
            Long count = JdkFlowAdapter.flowPublisherToFlux(kiln).publishOn(consumer, PREFETCH)
                    .doOnNext(stages::deliver)
                    .count()
                    .block(Duration.ofSeconds(240));
            assertEquals(FourStages.ELEMENTS, count);
            stages.assertBoundedAndExact("Reactor", PREFETCH);
        } finally {
            consumer.dispose();
        }
    }
}
