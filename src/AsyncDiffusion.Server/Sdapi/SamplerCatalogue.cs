using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>
/// AUTOMATIC1111's sampler and schedule-type names: what <c>/sdapi/v1/samplers</c> and
/// <c>/schedulers</c> list, and how a request's <c>sampler_name</c> and <c>scheduler</c> fields
/// become one scheduler name the library resolves.
/// </summary>
internal static class SamplerCatalogue
{
    /// <summary>Every sampler, with the schedule types it takes (A1111's shape plus <c>schedule_types</c>).</summary>
    public static object Samplers() => SchedulerRegistry.Entries.Select(e => new
    {
        name = e.Name,
        aliases = e.Aliases,
        options = new { },
        schedule_types = SchedulerRegistry.ScheduleTypesFor(e).Select(s => s.Label).ToArray(),
    });

    /// <summary>The schedule types at least one sampler takes, in A1111's shape.</summary>
    public static object ScheduleTypes() => SchedulerRegistry.ScheduleTypes.Select(s => new
    {
        name = s.Name,
        label = s.Label,
        aliases = s.Aliases.Count == 0 ? null : s.Aliases,
        default_rho = s.DefaultRho,
        need_inner_model = false,
    });

    /// <summary>
    /// The scheduler for a request: null (the model's own) when neither field names one. A schedule
    /// type in the sampler name ("DPM++ 2M Karras") wins over the <c>scheduler</c> field, as in A1111;
    /// a schedule type without a sampler applies to the model's own scheduler.
    /// </summary>
    public static string? SchedulerFor(string? samplerName, string? scheduleTypeName, SchedulerConfig modelConfig)
    {
        ScheduleType? type = null;
        if (scheduleTypeName is not null && !SchedulerRegistry.TryFindScheduleType(scheduleTypeName, out type))
            throw new BadRequestException("scheduler", $"Scheduler not found: '{scheduleTypeName}'; available: {string.Join(", ", SchedulerRegistry.ScheduleTypes.Select(s => s.Label))}");

        SchedulerEntry sampler;
        if (samplerName is null)
        {
            if (type is null || type.Overrides.Count == 0) return null;
            sampler = SchedulerRegistry.Entries.FirstOrDefault(e => e.ClassName == modelConfig.ClassName && e.Overrides.Count == 0)
                ?? throw new BadRequestException("sampler_name", $"scheduler '{type.Label}' needs a sampler_name; available: {string.Join(", ", SchedulerRegistry.Names)}");
        }
        else
        {
            if (!SchedulerRegistry.TryParse(samplerName, out sampler, out var named))
                throw new BadRequestException("sampler_name", $"Sampler not found: '{samplerName}'; available: {string.Join(", ", SchedulerRegistry.Names)}");
            type = named ?? type;
        }
        try
        {
            return SchedulerRegistry.Resolve(sampler.Name, type?.Label).Name;
        }
        catch (AsyncDiffusionException e)
        {
            throw new BadRequestException("scheduler", e.Message);
        }
    }
}
