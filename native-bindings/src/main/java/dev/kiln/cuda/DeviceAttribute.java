package dev.kiln.cuda;

/** The {@code cudaDeviceAttr} values Kiln reads, with their C values. */
public enum DeviceAttribute {
    /** {@code cudaDevAttrMultiProcessorCount}. */
    MULTI_PROCESSOR_COUNT(16),
    /** {@code cudaDevAttrUnifiedAddressing}: 1 when host and device share one address space. */
    UNIFIED_ADDRESSING(41),
    /** {@code cudaDevAttrComputeCapabilityMajor}. */
    COMPUTE_CAPABILITY_MAJOR(75),
    /** {@code cudaDevAttrComputeCapabilityMinor}. */
    COMPUTE_CAPABILITY_MINOR(76);

    private final int cValue;

    DeviceAttribute(int cValue) {
        this.cValue = cValue;
    }

    /**
     * The value of the C enumerator.
     *
     * @return the {@code cudaDeviceAttr} value
     */
    public int cValue() {
        return cValue;
    }
}
