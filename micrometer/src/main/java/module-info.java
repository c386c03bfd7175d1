/** Binds a compiled graph's statistics to a Micrometer {@code MeterRegistry}. Optional. */
@SuppressWarnings({"requires-automatic", "requires-transitive-automatic"}) // micrometer-core is an automatic module
module dev.kiln.micrometer {
    requires transitive dev.kiln.executor;
    requires transitive micrometer.core;

    exports dev.kiln.micrometer;
}
